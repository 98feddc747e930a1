"""Saved cards as Stripe keeps them: a setup made for a customer attaches its card to that
customer when it succeeds, so checkout's Pay neither attaches it again nor reads the card a
second time for its country (the setup is read with its card expanded). The local gateway
(devtools/localstripe_cards.py) and the memory gateway follow Stripe here, and refuse what
Stripe refuses: a card that belongs to another customer (both), or one never attached used
twice (the local gateway; the memory gateway's cards all come attached from a setup)."""

from __future__ import annotations

import dataclasses

import pytest
import stripe

from core.money import Money
from payments import services as payment_services
from payments.gateway import ChargeRequest, GatewayRejected
from payments.memory_gateway import CARD_OK, MemoryGateway
from payments.stripe_gateway import StripeGateway
from storefront.models import Order, OrderStatus
from tests import gateway_helpers as gw
from tests.catalog import catalog as shared_catalog
from tests.upsell.helpers import finish_setup, offer_token

HOST = "t1.localhost"


@pytest.fixture
def sdk(stripe_api_base) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_local", base_addresses={"api": stripe_api_base})


@pytest.fixture
def gateway(stripe_api_base) -> StripeGateway:
    return StripeGateway(secret_key="sk_test_local", api_base=stripe_api_base, timeout=5)


def _setup_for(sdk, email: str, card: str = gw.CARD_OK) -> tuple[str, str, str]:
    """(customer, setup, status): a customer and a setup made for them, confirmed by 'Stripe.js'."""
    customer = sdk.v1.customers.create(params={"email": email}).id
    setup = sdk.v1.setup_intents.create(params={"customer": customer, "usage": "off_session"}).id
    return customer, setup, gw.confirm_card_setup(setup, card)


def _charge(sdk, customer: str | None, method: str):
    params = {"amount": 500, "currency": "eur", "payment_method": method, "confirm": True}
    if customer:
        params["customer"] = customer
    return sdk.v1.payment_intents.create(params=params)


@pytest.mark.gateway
def test_a_succeeded_setup_attaches_its_card_to_its_customer_and_says_so(sdk, gateway):
    customer, setup, status = _setup_for(sdk, "a@example.com")
    assert status == "succeeded"
    result = gateway.setup_retrieve(setup)
    assert result.customer_ref == customer and result.card_country == "FR"
    assert sdk.v1.payment_methods.retrieve(result.payment_method_ref).customer == customer
    # Charged on-session, then again off-session (the one-click offer): both go through.
    assert _charge(sdk, customer, result.payment_method_ref).status == "succeeded"
    assert _charge(sdk, customer, result.payment_method_ref).status == "succeeded"


@pytest.mark.gateway
def test_a_3ds_setup_attaches_once_authenticated_and_a_declined_one_never(sdk, gateway):
    customer, setup, status = _setup_for(sdk, "b@example.com", gw.CARD_3DS)
    assert status == "requires_action"
    method = gateway.setup_retrieve(setup).payment_method_ref
    assert sdk.v1.payment_methods.retrieve(method).customer is None
    finish_setup(setup)
    assert sdk.v1.payment_methods.retrieve(method).customer == customer

    customer, setup, status = _setup_for(sdk, "c@example.com", gw.CARD_DECLINE_AT_SETUP)
    assert status == "canceled"
    method = sdk.v1.setup_intents.retrieve(setup).payment_method
    assert sdk.v1.payment_methods.retrieve(method).customer is None


@pytest.mark.gateway
def test_the_local_gateway_refuses_another_customers_card_and_a_second_unattached_use(sdk):
    _, setup, _ = _setup_for(sdk, "d@example.com")
    method = sdk.v1.setup_intents.retrieve(setup).payment_method
    stranger = sdk.v1.customers.create(params={"email": "e@example.com"}).id
    with pytest.raises(stripe.InvalidRequestError, match="another customer"):
        _charge(sdk, stranger, method)

    loose = sdk.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": gw.CARD_OK, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    ).id
    assert _charge(sdk, None, loose).status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError, match="may not be used again"):
        _charge(sdk, stranger, loose)
    # Stripe's test tokens are a new card each time they are named.
    assert _charge(sdk, None, "pm_card_visa").status == "succeeded"
    assert _charge(sdk, None, "pm_card_visa").status == "succeeded"


@pytest.mark.gateway
def test_attaching_another_customers_card_is_refused_and_the_same_customers_is_fine(sdk, gateway):
    owner, setup, _ = _setup_for(sdk, "f@example.com")
    method = sdk.v1.setup_intents.retrieve(setup).payment_method
    stranger = sdk.v1.customers.create(params={"email": "g@example.com"}).id
    with pytest.raises(stripe.InvalidRequestError, match="already been attached"):
        sdk.v1.payment_methods.attach(method, params={"customer": stranger})
    with pytest.raises(GatewayRejected, match="already been attached"):
        gateway.payment_method_attach(payment_method_ref=method, customer_ref=stranger)
    gateway.payment_method_attach(payment_method_ref=method, customer_ref=owner)
    assert sdk.v1.payment_methods.retrieve(method).customer == owner


def test_the_memory_gateway_keeps_cards_as_stripe_does():
    gateway = MemoryGateway(prefix="t")
    owner = gateway.customer_create(email="a@example.com", idempotency_key="c1")
    stranger = gateway.customer_create(email="b@example.com", idempotency_key="c2")
    setup = gateway.setup_create(customer_ref=owner, idempotency_key="s1")
    gateway.setup_confirm(setup.setup_ref, card=CARD_OK)
    result = gateway.setup_retrieve(setup.setup_ref)
    assert result.customer_ref == owner

    def charge(customer: str, key: str):
        return gateway.charge(
            ChargeRequest(
                amount=Money(500, "EUR"),
                customer_ref=customer,
                payment_method_ref=result.payment_method_ref,
                idempotency_key=key,
                off_session=True,
            )
        )

    assert charge(owner, "k1").status == charge(owner, "k2").status == "succeeded"
    with pytest.raises(GatewayRejected):
        charge(stranger, "k3")
    gateway.payment_method_attach(payment_method_ref=result.payment_method_ref, customer_ref=owner)
    with pytest.raises(GatewayRejected, match="already been attached"):
        gateway.payment_method_attach(
            payment_method_ref=result.payment_method_ref, customer_ref=stranger
        )


class _Counting:
    """The real gateway, with the names of the calls made through it."""

    def __init__(self, real, change=None):
        self.real, self.change, self.calls = real, change, []

    def __getattr__(self, name):
        attr = getattr(self.real, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            self.calls.append(name)
            result = attr(*args, **kwargs)
            if name == "setup_retrieve" and self.change:
                result = dataclasses.replace(result, **self.change)
            return result

        return call


def _checkout(client, monkeypatch, change=None) -> tuple[Order, list[str], list[str]]:
    """Start, set up the card, pay: (order, the calls Pay made, the calls the accept made)."""
    started = client.post(
        "/checkout/course/start",
        {"email": "buyer@example.com", "country": "DE", "region": "", "save_card": "on"},
    ).json()
    order = Order.objects.get(token=started["order"])
    assert gw.confirm_card_setup(order.setup_ref) == "succeeded"
    counting = _Counting(payment_services.get_gateway(), change)
    monkeypatch.setattr(payment_services, "get_gateway", lambda **_: counting)
    paid = client.post(started["pay_url"], {"setup_intent": order.setup_ref})
    assert paid.json()["status"] == "paid", paid.content
    at_pay = list(counting.calls)
    accepted = client.post(f"/o/{order.token}/offer/accept", {"token": offer_token(client, order)})
    assert accepted.status_code == 303
    order.refresh_from_db()
    return order, at_pay, counting.calls[len(at_pay) :]


@pytest.mark.gateway
def test_pay_reads_the_setup_once_and_charges_with_no_attach_and_no_second_card_read(
    tenant, client_for, monkeypatch
):
    shared_catalog(upsell=True)
    order, at_pay, at_accept = _checkout(client_for(HOST), monkeypatch)
    assert at_pay == ["setup_retrieve", "charge"]
    assert at_accept == ["charge"]  # the one-click offer, off-session, on the saved card
    assert order.status == OrderStatus.PAID and order.lines.count() == 2
    assert order.tax_evidence["card_country"] == "FR"


@pytest.mark.gateway
def test_a_setup_that_does_not_name_its_customer_or_country_gets_both_asked(
    tenant, client_for, monkeypatch
):
    """A gateway that does not say whom the setup was for, nor the card's country: Pay
    attaches the card and reads its country, as it always did."""
    shared_catalog(upsell=True)
    order, at_pay, at_accept = _checkout(
        client_for(HOST), monkeypatch, change={"customer_ref": None, "card_country": None}
    )
    assert at_pay == [
        "setup_retrieve",
        "payment_method_attach",
        "payment_method_country",
        "charge",
    ]
    assert at_accept == ["charge"]
    assert order.status == OrderStatus.PAID and order.lines.count() == 2
    assert order.tax_evidence["card_country"] == "FR"
