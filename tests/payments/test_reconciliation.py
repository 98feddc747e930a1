"""Reconciliation: in-flight attempts settle exactly once, orphans and duplicates are
flagged, runs are safe concurrently and twice, and a gateway outage loses nothing."""

import pytest

from core.money import Money
from devtools.services import free_port
from payments import reconciliation
from payments.gateway import GatewayUnavailable, use_gateway
from payments.models import AttemptStatus, ChargeAttempt, LedgerEntry, Mismatch
from payments.reconciliation import reconcile_run
from payments.services import gateway_customer_get_or_create
from payments.stripe_gateway import StripeGateway
from storefront.models import OrderStatus
from tests import gateway_helpers as gw
from tests.concurrency import in_threads
from tests.payments import helpers as h

pytestmark = pytest.mark.gateway
NOW = {
    "in_flight_grace": __import__("datetime").timedelta(0),
    "resend_after": __import__("datetime").timedelta(0),
}


class ChargeTimesOut(StripeGateway):
    def charge(self, request):
        raise GatewayUnavailable("read timed out")


@pytest.fixture
def shop(tenant):
    return h.catalog()


def _charges(order) -> int:
    return LedgerEntry.objects.filter(reference=order.reference, kind="charge").count()


def test_an_attempt_left_in_flight_by_a_crash_becomes_exactly_one_recorded_charge(
    shop, client_for, monkeypatch, stripe_api_base
):
    order = h.checkout_started(client_for("t1.localhost"), shop[1])
    h.pay_and_crash(order, monkeypatch)
    attempt = ChargeAttempt.objects.get(reference=order.reference)
    assert attempt.status == AttemptStatus.IN_FLIGHT

    first = reconcile_run(**NOW)
    second = reconcile_run(**NOW)  # twice in a row changes nothing more

    assert not first.gateway_down and not second.skipped
    attempt.refresh_from_db()
    order.refresh_from_db()
    assert attempt.status == AttemptStatus.SUCCEEDED and attempt.sends == 1
    assert order.status == OrderStatus.PAID
    assert len(gw.payment_intents()) == 1 and _charges(order) == 2
    assert not Mismatch.objects.exists()


def test_a_recent_in_flight_attempt_the_gateway_does_not_have_is_not_resent_yet(
    shop, client_for, stripe_api_base
):
    order = h.checkout_started(client_for("t1.localhost"), shop[1])
    use_gateway(ChargeTimesOut(secret_key="sk_test_local", api_base=stripe_api_base, timeout=5))
    try:
        h.pay(order)
    finally:
        use_gateway(None)
    # Default grace: the request that sent it may still be waiting for the answer.
    reconcile_run()
    attempt = ChargeAttempt.objects.get(reference=order.reference)
    assert attempt.status == AttemptStatus.IN_FLIGHT and attempt.sends == 1
    assert gw.payment_intents() == []


def _card(customer_ref: str) -> str:
    method = h.sdk().v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": gw.CARD_OK, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    )
    h.sdk().v1.payment_methods.attach(method.id, params={"customer": customer_ref})
    return method.id


def _gateway_charge(customer_ref: str, metadata: dict, amount: int = 2500) -> str:
    intent = h.sdk().v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": "usd",
            "customer": customer_ref,
            "payment_method": _card(customer_ref),
            "confirm": True,
            "metadata": metadata,
            "payment_method_types": ["card"],
        }
    )
    assert intent.status == "succeeded"
    return intent.id


def test_a_gateway_charge_without_an_attempt_is_flagged_and_other_creators_charges_are_not(
    tenant, stripe_api_base
):
    ours = gateway_customer_get_or_create(email="buyer@example.com").gateway_ref
    stranger = h.sdk().v1.customers.create(params={"email": "x@elsewhere.example"}).id
    with_metadata = _gateway_charge(
        ours, {"attempt": "att_unknown", "tenant": "t1", "reference": "order:999"}
    )
    no_metadata = _gateway_charge(ours, {})
    _gateway_charge(stranger, {"attempt": "att_theirs", "tenant": "t2"})
    _gateway_charge(stranger, {})

    reconcile_run(**NOW)
    reconcile_run(**NOW)

    flagged = set(
        Mismatch.objects.filter(kind="orphan_charge").values_list("gateway_ref", flat=True)
    )
    assert flagged == {with_metadata, no_metadata}
    assert Mismatch.objects.get(gateway_ref=with_metadata).reference == "order:999"
    assert not LedgerEntry.objects.exists()


def test_a_second_succeeded_payment_for_one_attempt_is_flagged_as_a_duplicate(
    shop, client_for, stripe_api_base
):
    order = h.checkout_started(client_for("t1.localhost"), shop[1])
    h.pay(order)
    attempt = ChargeAttempt.objects.get(reference=order.reference)
    duplicate = _gateway_charge(
        attempt.customer_ref,
        {"attempt": attempt.idempotency_key, "tenant": "t1"},
        amount=attempt.amount,
    )
    reconcile_run(**NOW)
    assert list(Mismatch.objects.values_list("kind", "gateway_ref")) == [
        ("duplicate_charge", duplicate)
    ]
    attempt.refresh_from_db()
    assert attempt.gateway_ref != duplicate and _charges(order) == 2


def test_gateway_refunds_beyond_the_charge_are_recorded_up_to_it_and_the_total_is_flagged(
    shop, client_for, stripe_api_base
):
    order = h.checkout_started(client_for("t1.localhost"), shop[1])
    h.pay(order)
    (intent,) = gw.payment_intents()
    h.sdk().v1.refunds.create(params={"payment_intent": intent.id})  # all of it
    h.sdk().v1.refunds.create(params={"payment_intent": intent.id, "amount": 500})  # and more
    reconcile_run(**NOW)
    refunded = sum(
        LedgerEntry.objects.filter(reference=order.reference, kind="refund").values_list(
            "amount", flat=True
        )
    )
    assert refunded == h.ORDER_TOTAL
    assert Mismatch.objects.filter(kind="refund_total", gateway_ref=intent.id).count() == 1
    order.refresh_from_db()
    assert order.status == OrderStatus.REFUNDED


def test_with_the_gateway_down_attempts_stay_pending_and_a_later_run_charges_once(
    shop, client_for, stripe_api_base
):
    order = h.checkout_started(client_for("t1.localhost"), shop[1])
    use_gateway(ChargeTimesOut(secret_key="sk_test_local", api_base=stripe_api_base, timeout=5))
    try:
        attempt = h.pay(order)
        assert attempt.status == AttemptStatus.IN_FLIGHT
        use_gateway(
            StripeGateway(
                secret_key="sk_test_local", api_base=f"http://127.0.0.1:{free_port()}", timeout=1
            )
        )
        report = reconcile_run(**NOW)
    finally:
        use_gateway(None)
    assert report.gateway_down
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.IN_FLIGHT and gw.payment_intents() == []

    reconcile_run(**NOW)  # the gateway is back: nothing there, so it is re-sent (same key)

    attempt.refresh_from_db()
    order.refresh_from_db()
    assert attempt.status == AttemptStatus.SUCCEEDED and attempt.sends == 2
    assert order.status == OrderStatus.PAID
    (intent,) = gw.payment_intents()
    assert intent.metadata["attempt"] == attempt.idempotency_key
    assert _charges(order) == 2


@pytest.mark.parametrize("with_lock", [True, False])
def test_two_concurrent_reconciliation_runs_record_no_duplicates(
    live_tenant, client_for, monkeypatch, stripe_api_base, with_lock
):
    _, bump = h.catalog()
    order = h.checkout_started(client_for("t1.localhost"), bump)
    h.pay_and_crash(order, monkeypatch)
    ours = ChargeAttempt.objects.get(reference=order.reference).customer_ref
    orphan = _gateway_charge(ours, {"attempt": "att_lost", "tenant": "t1"})
    if not with_lock:  # the writes themselves must hold without the per-tenant lock
        from contextlib import contextmanager

        @contextmanager
        def no_lock():
            yield True

        monkeypatch.setattr(reconciliation, "_tenant_lock", no_lock)
    _, errors = in_threads(2, lambda: reconcile_run(**NOW), tenant=live_tenant, timeout=30)
    assert errors == []
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert (
        len(
            [
                i
                for i in gw.payment_intents()
                if i.metadata.to_dict().get("attempt", "").startswith("att_") and i.id != orphan
            ]
        )
        == 1
    )
    assert _charges(order) == 2
    assert list(Mismatch.objects.values_list("kind", "gateway_ref")) == [("orphan_charge", orphan)]
    from analytics.models import Event

    assert Event.objects.filter(order_id=order.pk, name="checkout_completed").count() == 1


def test_a_duplicated_reconcile_task_does_nothing_twice(
    shop, client_for, monkeypatch, stripe_api_base
):
    from payments.tasks import reconcile

    order = h.checkout_started(client_for("t1.localhost"), shop[1])
    h.pay_and_crash(order, monkeypatch)
    ChargeAttempt.objects.update(
        sent_at=__import__("django.utils.timezone").utils.timezone.now()
        - __import__("datetime").timedelta(minutes=10)
    )
    reconcile.apply(throw=True)
    reconcile.apply(throw=True)
    assert _charges(order) == 2 and len(gw.payment_intents()) == 1
    assert ChargeAttempt.objects.get(reference=order.reference).sends == 1
    assert Money(h.ORDER_TOTAL, "USD").amount == gw.payment_intents()[0].amount
