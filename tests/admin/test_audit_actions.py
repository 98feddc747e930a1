"""Issue 11.4: every staff action that moves money or changes what buyers see leaves an audit
row with who, when, what and from where — driven through the real store admin as the owner."""

from __future__ import annotations

import json

import pytest

from audit.models import AuditEntry
from core.money_forms import major_text
from offers.models import Offer
from partners.models import ApiKey, WebhookSubscription
from payments.models import Refund, RefundStatus
from storefront.models import Product, StoreSettings, TaxRate
from tests.admin.conftest import audited
from tests.factories import OfferFactory, ProductFactory, TaxRateFactory
from tests.payments import helpers as h

ADMIN = "/admin"


def _product_form(product: Product, **overrides) -> dict:
    data = {
        "slug": product.slug,
        "name": product.name,
        "description": product.description,
        "tier": product.tier,
        "ladder_position": product.ladder_position,
        "price_amount": product.price_amount,
        "currency": product.currency,
        "anchor_amount": product.anchor_amount or "",
        "deliverable_url": product.deliverable_url,
        "status": product.status,
        "refund_terms": product.refund_terms,
        # The inlines' management forms, as the admin's page sends them (no pictures or
        # testimonials added).
        **{
            f"{prefix}-{key}": value
            for prefix in ("images", "testimonials")
            for key, value in (("TOTAL_FORMS", "0"), ("INITIAL_FORMS", "0"))
        },
    }
    data.update(overrides)
    for name in ("price_amount", "anchor_amount"):  # typed as the creator types them: "49.00"
        if isinstance(data[name], int):
            data[name] = major_text(data[name], data["currency"])
    return data


def _offer_form(offer: Offer | None = None, **overrides) -> dict:
    data = {
        "kind": "bump",
        "price_amount": 900,
        "currency": "USD",
        "headline": "Add the presets",
        "benefit": "Apply what you learn in one click.",
        "refund_terms": "Refundable.",
        "testimonial": "",
        "followup_delays_hours": "[]",
        "customer_cap_hours": 24,
        "parent": "",
    }
    if offer is not None:
        data.update(
            kind=offer.kind,
            trigger_product=offer.trigger_product_id,
            product=offer.product_id,
            price_amount=offer.price_amount,
            currency=offer.currency,
            headline=offer.headline,
            benefit=offer.benefit,
            refund_terms=offer.refund_terms,
            customer_cap_hours=offer.customer_cap_hours,
        )
    data.update(overrides)
    if isinstance(data["price_amount"], int):  # typed as the creator types it: "9.00"
        data["price_amount"] = major_text(data["price_amount"], data["currency"])
    return data


def _action(client, changelist: str, action: str, pks, **extra):
    return client.post(
        changelist, {"action": action, "_selected_action": list(pks), "index": 0, **extra}
    )


# --- prices and offers -----------------------------------------------------------------------


def test_a_product_price_change_in_the_store_admin_is_audited_with_old_and_new_price(
    owner_client,
):
    product = ProductFactory(price_amount=4900)
    response = owner_client.post(
        f"{ADMIN}/storefront/product/{product.pk}/change/",
        _product_form(product, price_amount=5900),
    )
    assert response.status_code == 302, response.content[:1500]
    entry = audited("storefront.product.change", object_id=product.pk)
    assert entry.changes == {"price_amount": [4900, 5900]}
    assert entry.object_type == "storefront.product"


def test_creating_an_offer_in_the_admin_is_audited(owner_client):
    core, addon = ProductFactory(price_amount=4900), ProductFactory(price_amount=1200)
    response = owner_client.post(
        f"{ADMIN}/offers/offer/add/",
        _offer_form(trigger_product=core.pk, product=addon.pk, price_amount=900),
    )
    assert response.status_code == 302, response.content[:1500]
    offer = Offer.objects.get(trigger_product=core)
    entry = audited("offers.offer.add", object_id=offer.pk)
    assert entry.changes["price_amount"] == [None, 900]
    assert entry.changes["status"] == [None, "active"]


def test_an_offer_price_change_in_the_admin_is_audited(owner_client):
    offer = OfferFactory(price_amount=900)
    response = owner_client.post(
        f"{ADMIN}/offers/offer/{offer.pk}/change/", _offer_form(offer, price_amount=1200)
    )
    assert response.status_code == 302, response.content[:1500]
    assert audited("offers.offer.change", object_id=offer.pk).changes == {
        "price_amount": [900, 1200]
    }


def test_pausing_an_offer_asks_for_a_reason_and_audits_the_pause_with_it(owner_client):
    offer = OfferFactory()
    page = _action(owner_client, f"{ADMIN}/offers/offer/", "pause", [offer.pk])
    assert page.status_code == 200 and b'name="reason"' in page.content
    offer.refresh_from_db()
    assert offer.status == Offer.Status.ACTIVE
    assert not AuditEntry.objects.exists()  # showing the form changed nothing

    done = _action(
        owner_client,
        f"{ADMIN}/offers/offer/",
        "pause",
        [offer.pk],
        apply="Pause",
        reason="refunds too high, rewording",
    )
    assert done.status_code == 302
    offer.refresh_from_db()
    assert (offer.status, offer.paused_reason) == ("paused", "refunds too high, rewording")
    assert audited("offers.offer.pause", object_id=offer.pk).changes == {
        "status": ["active", "paused"],
        "paused_reason": ["", "refunds too high, rewording"],
    }
    listing = owner_client.get(f"{ADMIN}/offers/offer/")
    assert "refunds too high, rewording" in listing.content.decode()


def test_resuming_an_offer_in_the_admin_is_audited(owner_client):
    offer = OfferFactory(status=Offer.Status.PAUSED, paused_reason="guardrail: refunds")
    response = _action(owner_client, f"{ADMIN}/offers/offer/", "resume", [offer.pk])
    assert response.status_code == 302
    assert audited("offers.offer.resume", object_id=offer.pk).changes == {
        "status": ["paused", "active"],
        "paused_reason": ["guardrail: refunds", ""],
    }


# --- store settings and tax ------------------------------------------------------------------


def test_a_tax_rate_change_in_the_admin_is_audited(owner_client):
    rate = TaxRateFactory(country="DE", rate="19.000")
    response = owner_client.post(
        f"{ADMIN}/storefront/taxrate/{rate.pk}/change/",
        {"country": "DE", "region": "", "rate": "7.000", "name": "VAT"},
    )
    assert response.status_code == 302, response.content[:1500]
    assert audited("storefront.taxrate.change", object_id=rate.pk).changes == {
        "rate": ["19.000", "7.000"]
    }
    assert str(TaxRate.objects.get(pk=rate.pk).rate) == "7.000"


def test_a_store_settings_change_in_the_admin_is_audited(owner_client):
    settings_row = StoreSettings.current()
    response = owner_client.post(
        f"{ADMIN}/storefront/storesettings/{settings_row.pk}/change/",
        {
            "prices_include_tax": "on",
            "statement_descriptor": "PHOTO STORE",
            "support_email": "help@t1.example",
            "support_refund_limit": "25.00",
        },
    )
    assert response.status_code == 302, response.content[:1500]
    entry = audited("storefront.storesettings.change", object_id=settings_row.pk)
    assert entry.changes["support_refund_limit"] == [5000, 2500]
    assert entry.changes["prices_include_tax"] == [False, True]
    assert entry.changes["statement_descriptor"] == ["CREATOR STORE", "PHOTO STORE"]


# --- API keys and webhook subscriptions ------------------------------------------------------


def test_creating_an_api_key_in_the_admin_is_audited_without_the_key_itself(owner_client):
    response = owner_client.post(
        f"{ADMIN}/partners/apikey/add/",
        {"name": "Zapier", "scope": "write", "rate_per_minute": 600},
    )
    assert response.status_code == 200
    token = response.context["secret"]
    key = ApiKey.objects.get(name="Zapier")
    entry = audited("partners.apikey.add", object_id=key.pk)
    assert entry.changes["scope"] == [None, "write"]
    assert entry.changes["secret_hash"] == "[REDACTED]"
    assert token not in json.dumps(entry.changes) and key.secret_hash not in json.dumps(
        entry.changes
    )


def test_revoking_an_api_key_in_the_admin_is_audited(owner_client):
    from partners.services import api_key_create

    key = api_key_create(name="old integration", scope=ApiKey.Scope.READ).api_key
    response = _action(owner_client, f"{ADMIN}/partners/apikey/", "revoke", [key.pk])
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    entry = audited("partners.apikey.action.revoke", object_id=key.pk)
    assert list(entry.changes) == ["revoked_at"] and entry.changes["revoked_at"][0] is None


def test_creating_a_webhook_subscription_in_the_admin_is_audited_with_the_secret_masked(
    owner_client,
):
    response = owner_client.post(
        f"{ADMIN}/partners/webhooksubscription/add/",
        {
            "url": "https://hooks.partner.example/in",
            "event_types": '["refund_issued"]',
            "is_active": "on",
            "description": "accounting",
        },
    )
    assert response.status_code == 200, response.content[:1500]  # the secret, shown once
    subscription = WebhookSubscription.objects.get()
    entry = audited("partners.webhooksubscription.add", object_id=subscription.pk)
    assert entry.changes["url"] == [None, "https://hooks.partner.example/in"]
    assert entry.changes["secret"] == "[REDACTED]"
    assert subscription.secret not in json.dumps(entry.changes)


def test_changing_a_webhook_subscription_in_the_admin_is_audited(owner_client):
    subscription = WebhookSubscription.objects.create(
        url="https://hooks.partner.example/in", event_types=["*"], secret="whsec_x" * 4
    )
    response = owner_client.post(
        f"{ADMIN}/partners/webhooksubscription/{subscription.pk}/change/",
        {"url": "https://hooks.partner.example/v2", "event_types": '["*"]', "description": ""},
    )  # is_active unticked
    assert response.status_code == 302, response.content[:1500]
    assert audited("partners.webhooksubscription.change", object_id=subscription.pk).changes == {
        "url": ["https://hooks.partner.example/in", "https://hooks.partner.example/v2"],
        "is_active": [True, False],
    }


def test_deleting_a_webhook_subscription_in_the_admin_is_audited(owner_client):
    subscription = WebhookSubscription.objects.create(
        url="https://hooks.partner.example/in", event_types=["*"], secret="whsec_y" * 4
    )
    response = owner_client.post(
        f"{ADMIN}/partners/webhooksubscription/{subscription.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302
    assert not WebhookSubscription.objects.exists()
    entry = audited("partners.webhooksubscription.delete", object_id=subscription.pk)
    assert entry.changes["url"] == ["https://hooks.partner.example/in", None]


# --- refunds (over localstripe) --------------------------------------------------------------


def _paid_order(client_for):
    _, bump = h.catalog()
    order = h.checkout_started(client_for("t1.localhost"), bump)
    h.pay(order)
    order.refresh_from_db()
    assert order.status == "paid"
    return order


@pytest.mark.gateway
def test_a_partial_line_refund_from_the_admin_is_audited(owner_client, client_for, stripe_api_base):
    order = _paid_order(client_for)
    bump = order.lines.get(kind="bump")
    page = _action(owner_client, f"{ADMIN}/storefront/order/", "refund_lines", [order.pk])
    assert page.status_code == 200
    key = page.context["form"]["refund_key"].value()
    response = _action(
        owner_client,
        f"{ADMIN}/storefront/order/",
        "refund_lines",
        [order.pk],
        apply="Refund",
        refund_key=key,
        reason="buyer asked",
        **{f"amount_{bump.pk}": "5.00"},
    )
    assert response.status_code == 302
    refund = Refund.objects.get()
    entry = audited("payments.refund.issue", object_id=refund.pk)
    assert entry.changes["amount"] == [None, 500]
    assert entry.changes["status"] == [None, RefundStatus.SUCCEEDED]
    assert (entry.changes["line_key"], entry.changes["reason"]) == (bump.line_key, "buyer asked")


@pytest.mark.gateway
def test_a_whole_order_refund_from_the_admin_is_audited_once_per_line(
    owner_client, client_for, stripe_api_base
):
    order = _paid_order(client_for)
    page = _action(owner_client, f"{ADMIN}/storefront/order/", "refund_in_full", [order.pk])
    assert page.status_code == 200
    key = page.context["form"]["refund_key"].value()
    response = _action(
        owner_client,
        f"{ADMIN}/storefront/order/",
        "refund_in_full",
        [order.pk],
        apply="Yes",
        refund_key=key,
        reason="chargeback threat",
    )
    assert response.status_code == 302
    entries = AuditEntry.objects.filter(action="payments.refund.issue")
    assert sorted(e.changes["amount"][1] for e in entries) == sorted([h.CORE_TOTAL, h.BUMP_TOTAL])
    refunds = list(Refund.objects.all())
    assert len(refunds) == 2
    for refund in refunds:
        assert audited("payments.refund.issue", object_id=refund.pk).changes["reason"] == (
            "chargeback threat"
        )
