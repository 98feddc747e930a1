"""Funnel rules: pricing guardrails in Offer.clean(), ownership, pausing, one offer per order."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import Actor
from offers.models import OfferDecision, OfferKind
from offers.services import offer_pause
from storefront.models import Customer
from storefront.services import upsell
from tests.factories import OfferFactory, ProductFactory
from tests.orders import make_order
from tests.upsell.helpers import buy, make_catalog


@pytest.fixture
def core(tenant):
    return ProductFactory(price_amount=10000)


def _upsell(core, price, **kw):
    return OfferFactory.build(
        kind=OfferKind.UPSELL,
        trigger_product=core,
        product=ProductFactory(),
        price_amount=price,
        **kw,
    )


def test_an_offer_in_the_sweet_spot_passes_clean_without_warnings(core):
    offer = _upsell(core, 2000)
    offer.full_clean()
    assert offer.price_warnings == []


def test_an_offer_outside_ten_to_thirty_percent_passes_with_a_warning(core):
    offer = _upsell(core, 4000)
    offer.full_clean()
    assert len(offer.price_warnings) == 1 and "40.0%" in offer.price_warnings[0]


def test_an_offer_above_half_the_cart_is_refused_unless_the_creator_overrides(core):
    with pytest.raises(ValidationError) as refused:
        _upsell(core, 5100).full_clean()
    assert "price_amount" in refused.value.message_dict
    assert "allow high price" in refused.value.message_dict["price_amount"][0]
    overridden = _upsell(core, 5100, allow_high_price=True)
    overridden.full_clean()
    assert overridden.price_warnings  # still outside the sweet spot


def test_a_downsell_needs_an_upsell_of_the_same_product_and_a_lower_price(core):
    parent = OfferFactory(kind=OfferKind.UPSELL, trigger_product=core, price_amount=2000)
    ok = OfferFactory.build(
        kind=OfferKind.DOWNSELL,
        trigger_product=core,
        parent=parent,
        product=ProductFactory(),
        price_amount=1000,
    )
    ok.full_clean()
    for bad in (
        OfferFactory.build(
            kind=OfferKind.DOWNSELL,
            trigger_product=core,
            parent=parent,
            product=ProductFactory(),
            price_amount=2000,
        ),
        OfferFactory.build(
            kind=OfferKind.DOWNSELL,
            trigger_product=ProductFactory(price_amount=10000),
            parent=parent,
            product=ProductFactory(),
            price_amount=1000,
        ),
    ):
        with pytest.raises(ValidationError):
            bad.full_clean()


def test_an_offer_in_another_currency_than_its_core_product_is_refused(core):
    with pytest.raises(ValidationError) as refused:
        _upsell(core, 2000, currency="EUR").full_clean()
    assert "currency" in refused.value.message_dict


@pytest.mark.gateway
def test_a_buyer_who_already_owns_the_offered_product_is_not_offered_it(
    tenant, client_for, stripe_api_base
):
    _, _, upsell_offer, _ = make_catalog()
    client = client_for("t1.localhost")
    first = buy(client)
    first.lines.filter(kind="core").update(product=upsell_offer.product)  # bought it before
    second = buy(client_for("t1.localhost"), email="buyer@example.com")
    assert upsell.next_step_url(order=second) is None
    assert client.get(f"/o/{second.token}/next")["Location"] == f"/o/{second.token}/thanks"


@pytest.mark.gateway
def test_a_paused_upsell_is_not_offered(tenant, client_for, stripe_api_base):
    _, _, upsell_offer, _ = make_catalog()
    offer_pause(actor=Actor.system("test"), offer=upsell_offer, reason="refunds rose")
    client = client_for("t1.localhost")
    order = buy(client)
    assert upsell.next_step_url(order=order) is None
    assert client.get(f"/o/{order.token}/offer")["Location"] == f"/o/{order.token}/thanks"


@pytest.mark.gateway
def test_an_order_holds_at_most_one_upsell_decision(tenant, client_for, stripe_api_base):
    make_catalog()
    client = client_for("t1.localhost")
    order = buy(client)
    client.get(f"/o/{order.token}/offer")
    decision = OfferDecision.objects.get(order=order)
    with pytest.raises(IntegrityError), transaction.atomic():
        OfferDecision.objects.create(
            order=order,
            customer=order.customer,
            offer=decision.offer,
            kind="upsell",
            nonce="x" * 32,
            expires_at=decision.expires_at,
            net_amount=1,
            tax_amount=0,
            total_amount=1,
            currency="USD",
            tax_rate=0,
            tax_inclusive=False,
        )


def test_an_order_holds_one_decision_per_kind_even_for_another_offer(tenant):
    """The second upsell decision names a *different* offer, so only
    offerdecision_one_per_kind (not offerdecision_one_per_offer) can refuse it."""
    core = ProductFactory(price_amount=4900)
    first = OfferFactory(kind=OfferKind.UPSELL, trigger_product=core, price_amount=1200)
    # One live upsell per product: the other offer hangs off another product.
    second = OfferFactory(
        kind=OfferKind.UPSELL, trigger_product=ProductFactory(), price_amount=1500
    )
    order, _ = make_order(
        Customer.objects.create(email="kind@buyer.example"),
        visitor="k1",
        source="ig",
        paid_at=timezone.now(),
        lines=[("core", core, None, 4900)],
    )

    def decide(offer, nonce):
        return OfferDecision.objects.create(
            order=order,
            customer=order.customer,
            offer=offer,
            kind=OfferKind.UPSELL,
            nonce=nonce,
            expires_at=timezone.now(),
            net_amount=offer.price_amount,
            tax_amount=0,
            total_amount=offer.price_amount,
            currency="USD",
            tax_rate=0,
            tax_inclusive=False,
        )

    decide(first, "a" * 32)
    with pytest.raises(IntegrityError) as refused, transaction.atomic():
        decide(second, "b" * 32)
    assert refused.value.__cause__.diag.constraint_name == "offerdecision_one_per_kind"
    assert OfferDecision.objects.filter(order=order).count() == 1
