"""The Stripe adapter against localstripe: results come back; Stripe objects do not."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
import stripe

from core.money import Money
from devtools.services import free_port
from payments.gateway import (
    ChargeRequest,
    GatewayEvent,
    GatewayRejected,
    GatewayUnavailable,
    PaymentResult,
    PaymentStatus,
)
from payments.stripe_gateway import StripeGateway

WEBHOOK_SECRET = "whsec_adapter_test"


@pytest.fixture
def gateway(stripe_api_base) -> StripeGateway:
    return StripeGateway(secret_key="sk_test_local", api_base=stripe_api_base, timeout=5)


@pytest.fixture
def sdk(stripe_api_base) -> stripe.StripeClient:
    """The SDK itself, standing in for the browser's Stripe.js (card numbers never reach us)."""
    return stripe.StripeClient("sk_test_local", base_addresses={"api": stripe_api_base})


@pytest.fixture
def customer_ref(gateway) -> str:
    return gateway.customer_create(email="buyer@example.com", idempotency_key="cust-1")


def _card(sdk: stripe.StripeClient, number: str) -> str:
    method = sdk.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    )
    return method.id


def _saved_card(gateway, sdk, customer_ref: str, number: str) -> str:
    method = _card(sdk, number)
    gateway.payment_method_attach(payment_method_ref=method, customer_ref=customer_ref)
    return method


def _charge(gateway, customer_ref: str, method: str, *, off_session: bool = True, key="att-1"):
    return gateway.charge(
        ChargeRequest(
            amount=Money(4900, "USD"),
            customer_ref=customer_ref,
            payment_method_ref=method,
            idempotency_key=key,
            off_session=off_session,
            metadata={"attempt": key, "order": "o-17"},
        )
    )


def _intents(sdk) -> list:
    return list(sdk.v1.payment_intents.list(params={"limit": 100}).data)


def test_a_customer_is_created_and_readable_at_the_gateway(gateway, sdk):
    ref = gateway.customer_create(email="ana@example.com", idempotency_key="c-ana")

    assert isinstance(ref, str) and ref.startswith("cus_")
    assert sdk.v1.customers.retrieve(ref).email == "ana@example.com"


def test_a_setup_intent_is_created_for_the_customer_and_read_back(gateway, customer_ref):
    created = gateway.setup_create(customer_ref=customer_ref, idempotency_key="setup-1")

    assert created.setup_ref.startswith("seti_")
    assert created.client_secret.startswith(created.setup_ref + "_secret_")
    assert created.payment_method_ref is None
    again = gateway.setup_retrieve(created.setup_ref)
    assert again == created


def test_a_payment_method_attaches_to_the_customer_and_reattaching_is_harmless(
    gateway, sdk, customer_ref
):
    method = _card(sdk, "4242424242424242")

    gateway.payment_method_attach(payment_method_ref=method, customer_ref=customer_ref)
    gateway.payment_method_attach(payment_method_ref=method, customer_ref=customer_ref)

    assert sdk.v1.payment_methods.retrieve(method).customer == customer_ref


def test_a_card_that_fails_when_saved_is_rejected_at_attach(gateway, sdk, customer_ref):
    method = _card(sdk, "4000000000000002")

    with pytest.raises(GatewayRejected):
        gateway.payment_method_attach(payment_method_ref=method, customer_ref=customer_ref)


def test_charging_a_good_card_succeeds_with_exactly_one_payment_intent(gateway, sdk, customer_ref):
    method = _saved_card(gateway, sdk, customer_ref, "4242424242424242")

    result = _charge(gateway, customer_ref, method)

    assert isinstance(result, PaymentResult)
    assert result.status is PaymentStatus.SUCCEEDED
    assert result.amount == Money(4900, "USD")
    assert result.metadata == {"attempt": "att-1", "order": "o-17"}
    intents = _intents(sdk)
    assert [i.id for i in intents] == [result.payment_ref]
    assert intents[0].status == "succeeded" and intents[0].amount == 4900
    assert gateway.payment_retrieve(result.payment_ref).status is PaymentStatus.SUCCEEDED


def test_a_card_declined_at_charge_time_is_a_declined_result_not_an_exception(
    gateway, sdk, customer_ref
):
    method = _saved_card(gateway, sdk, customer_ref, "4000000000000341")

    result = _charge(gateway, customer_ref, method)

    assert result.status is PaymentStatus.DECLINED
    assert result.decline_code == "card_declined"
    assert result.message
    # The failed intent is named, so reconciliation can read it back.
    assert result.payment_ref and result.payment_ref.startswith("pi_")
    assert gateway.payment_retrieve(result.payment_ref).status is PaymentStatus.DECLINED


def test_an_off_session_charge_on_a_3ds_card_requires_action_with_a_client_secret(
    gateway, sdk, customer_ref
):
    method = _saved_card(gateway, sdk, customer_ref, "4000002760003184")

    result = _charge(gateway, customer_ref, method, off_session=True)

    assert result.status is PaymentStatus.REQUIRES_ACTION
    assert result.payment_ref and result.payment_ref.startswith("pi_")
    assert result.client_secret and result.client_secret.startswith(result.payment_ref)


def test_a_requires_action_charge_succeeds_once_the_buyer_authenticates(
    gateway, sdk, customer_ref, stripe_api_base
):
    import urllib.parse
    import urllib.request

    method = _saved_card(gateway, sdk, customer_ref, "4000002760003184")
    pending = _charge(gateway, customer_ref, method, off_session=False)
    data = urllib.parse.urlencode({"client_secret": pending.client_secret, "success": "true"})
    url = f"{stripe_api_base}/v1/payment_intents/{pending.payment_ref}/_authenticate"
    urllib.request.urlopen(
        urllib.request.Request(
            url, data=data.encode(), headers={"Authorization": "Bearer sk_test_local"}
        ),
        timeout=5,
    ).close()

    assert gateway.payment_retrieve(pending.payment_ref).status is PaymentStatus.SUCCEEDED


def test_an_unreachable_gateway_raises_gateway_unavailable():
    gateway = StripeGateway(
        secret_key="sk_test_local", api_base=f"http://127.0.0.1:{free_port()}", timeout=2
    )

    with pytest.raises(GatewayUnavailable):
        gateway.ping()
    with pytest.raises(GatewayUnavailable):
        gateway.customer_create(email="a@example.com", idempotency_key="k")
    with pytest.raises(GatewayUnavailable):
        _charge(gateway, "cus_x", "pm_x")


def test_an_unknown_payment_is_a_gateway_rejection_not_a_stripe_error(gateway):
    with pytest.raises(GatewayRejected):
        gateway.payment_retrieve("pi_doesnotexist")


def test_a_partial_refund_refunds_only_that_amount(gateway, sdk, customer_ref):
    method = _saved_card(gateway, sdk, customer_ref, "4242424242424242")
    paid = _charge(gateway, customer_ref, method)

    refund = gateway.refund_create(
        payment_ref=paid.payment_ref, amount=Money(1200, "USD"), idempotency_key="rf-1"
    )

    assert refund.refund_ref.startswith("re_")
    assert refund.status == "succeeded"
    assert refund.amount == Money(1200, "USD")
    after = gateway.payment_retrieve(paid.payment_ref)
    assert after.amount_refunded == 1200
    assert after.amount == Money(4900, "USD")


def _sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """Stripe's scheme: v1 = HMAC-SHA256(secret, "<t>.<raw body>")."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def _event_payload(**overrides) -> bytes:
    event = {
        "id": "evt_123",
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": 1_760_000_000,
        "data": {"object": {"id": "pi_abc", "object": "payment_intent", "status": "succeeded"}},
    }
    event.update(overrides)
    return json.dumps(event).encode()


def test_a_correctly_signed_event_is_parsed(gateway):
    payload = _event_payload()

    event = gateway.event_parse(
        payload=payload, signature=_sign(payload, WEBHOOK_SECRET), secret=WEBHOOK_SECRET
    )

    assert event == GatewayEvent(
        event_id="evt_123",
        event_type="payment_intent.succeeded",
        object_type="payment_intent",
        object_id="pi_abc",
        created=1_760_000_000,
    )


@pytest.mark.parametrize(
    "case",
    ["wrong secret", "stale timestamp", "tampered body", "no header", "no secret", "not an event"],
)
def test_an_event_that_is_not_genuine_raises_value_error(gateway, case):
    payload = _event_payload()
    signature = _sign(payload, WEBHOOK_SECRET)
    secret = WEBHOOK_SECRET
    if case == "wrong secret":
        signature = _sign(payload, "whsec_someone_else")
    elif case == "stale timestamp":
        signature = _sign(payload, WEBHOOK_SECRET, timestamp=int(time.time()) - 3600)
    elif case == "tampered body":
        payload = payload.replace(b"pi_abc", b"pi_xyz")
    elif case == "no header":
        signature = ""
    elif case == "no secret":
        secret, signature = "", _sign(payload, "")
    elif case == "not an event":
        payload = b'{"hello": "world"}'
        signature = _sign(payload, WEBHOOK_SECRET)

    with pytest.raises(ValueError):
        gateway.event_parse(payload=payload, signature=signature, secret=secret)
