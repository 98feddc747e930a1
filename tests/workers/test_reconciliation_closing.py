"""Reconciliation closes what can no longer settle: an attempt left in flight past the
gateway's idempotency window, and a payment left waiting for authentication past a
configurable limit. Each is closed with its reason, the order, the offer page and the
follow-up flag agree with it, and a payment that turns up afterwards is flagged, not lost."""

from __future__ import annotations

import datetime as dt

import pytest

from analytics.models import Event
from offers.models import OfferDecision
from payments.gateway import GatewayUnavailable, use_gateway
from payments.models import AttemptStatus, ChargeAttempt, LedgerEntry, Mismatch
from payments.reconciliation import CLOSED_NO_PAYMENT, CLOSED_NOT_AUTHENTICATED, reconcile_run
from payments.stripe_gateway import StripeGateway
from storefront.models import FollowUpSend, OrderStatus
from storefront.services import followups, upsell
from tests import gateway_helpers as gw
from tests.payments import helpers as h
from tests.upsell.helpers import buy, make_catalog, offer_token

pytestmark = pytest.mark.gateway
HOST = "t1.localhost"
H = dt.timedelta(hours=1)


class ChargeTimesOut(StripeGateway):
    def charge(self, request):
        raise GatewayUnavailable("read timed out")


def _in_flight_order(client_for, stripe_api_base):
    _, bump = h.catalog()
    order = h.checkout_started(client_for(HOST), bump)
    use_gateway(ChargeTimesOut(secret_key="sk_test_local", api_base=stripe_api_base, timeout=5))
    try:
        attempt = h.pay(order)
    finally:
        use_gateway(None)
    assert attempt.status == AttemptStatus.IN_FLIGHT and gw.payment_intents() == []
    return order, attempt


def test_an_attempt_in_flight_past_the_idempotency_window_is_closed_with_its_reason_not_resent(
    tenant, client_for, stripe_api_base
):
    order, attempt = _in_flight_order(client_for, stripe_api_base)
    later = attempt.sent_at + 23 * H + dt.timedelta(minutes=1)

    reconcile_run(now=later)
    reconcile_run(now=later + H)  # twice changes nothing more

    attempt.refresh_from_db()
    order.refresh_from_db()
    assert attempt.status == AttemptStatus.DECLINED and attempt.sends == 1
    assert attempt.decline_code == CLOSED_NO_PAYMENT and "idempotency window" in attempt.message
    assert attempt.finished_at is not None
    assert gw.payment_intents() == []  # never sent again with a key the gateway may have lost
    assert order.status == OrderStatus.FAILED
    assert list(
        Event.objects.filter(order_id=order.pk, name="checkout_failed").values_list(
            "reason", flat=True
        )
    ) == [CLOSED_NO_PAYMENT]
    assert not FollowUpSend.objects.filter(order=order).exists()
    assert not LedgerEntry.objects.exists() and not Mismatch.objects.exists()


def test_an_attempt_in_flight_within_the_window_is_resent_not_closed(
    tenant, client_for, stripe_api_base
):
    order, attempt = _in_flight_order(client_for, stripe_api_base)

    reconcile_run(now=attempt.sent_at + 22 * H)

    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.SUCCEEDED and attempt.sends == 2
    assert len(gw.payment_intents()) == 1


def test_a_payment_that_turns_up_for_an_attempt_closed_after_the_window_is_flagged_not_lost(
    tenant, client_for, stripe_api_base
):
    order, attempt = _in_flight_order(client_for, stripe_api_base)
    reconcile_run(now=attempt.sent_at + 24 * H)
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.DECLINED
    method = h.sdk().v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": gw.CARD_OK, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    )
    h.sdk().v1.payment_methods.attach(method.id, params={"customer": attempt.customer_ref})
    late = h.sdk().v1.payment_intents.create(
        params={
            "amount": attempt.amount,
            "currency": "usd",
            "customer": attempt.customer_ref,
            "payment_method": method.id,
            "confirm": True,
            "payment_method_types": ["card"],
            "metadata": {
                "attempt": attempt.idempotency_key,
                "tenant": "t1",
                "reference": attempt.reference,
            },
        }
    )
    assert late.status == "succeeded"

    reconcile_run(now=attempt.sent_at + 25 * H)
    reconcile_run(now=attempt.sent_at + 26 * H)

    (mismatch,) = Mismatch.objects.all()
    assert (mismatch.kind, mismatch.gateway_ref, mismatch.reference) == (
        "orphan_charge",
        late.id,
        order.reference,
    )
    assert CLOSED_NO_PAYMENT in mismatch.detail
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.DECLINED and attempt.gateway_ref == ""


def _upsell_waiting_for_authentication(client):
    order = buy(client, card=gw.CARD_3DS)
    accepted = client.post(f"/o/{order.token}/offer/accept", {"token": offer_token(client, order)})
    assert accepted.status_code == 303
    attempt = ChargeAttempt.objects.get(purpose=f"order:{order.pk}:upsell")
    assert attempt.status == AttemptStatus.REQUIRES_ACTION
    return order, attempt


@pytest.mark.parametrize("swept_first", [False, True])
def test_an_upsell_left_waiting_for_authentication_past_the_limit_is_closed_and_goes_to_email(
    tenant, client_for, settings, stripe_api_base, swept_first
):
    make_catalog()
    settings.PAYMENTS_ACTION_MAX_AGE_HOURS = 2
    client = client_for(HOST)
    order, attempt = _upsell_waiting_for_authentication(client)
    if swept_first:  # the 30-minute sweep flagged it before reconciliation closed it
        ChargeAttempt.objects.filter(pk=attempt.pk).update(sent_at=attempt.sent_at - H)
        assert upsell.offers_flag_abandoned() == 1
        attempt.refresh_from_db()

    reconcile_run(now=attempt.sent_at + H)  # within the limit: re-read, left waiting
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.REQUIRES_ACTION
    reconcile_run(now=attempt.sent_at + 2 * H + dt.timedelta(minutes=1))
    reconcile_run(now=attempt.sent_at + 3 * H)

    attempt.refresh_from_db()
    order.refresh_from_db()
    assert attempt.status == AttemptStatus.DECLINED
    assert attempt.decline_code == CLOSED_NOT_AUTHENTICATED and "authentication" in attempt.message
    assert order.status == OrderStatus.PAID  # the primary payment stands
    assert not order.lines.filter(kind="upsell").exists()
    assert len(gw.payment_intents()) == 2  # the primary and the upsell's; nothing re-sent
    decision = OfferDecision.objects.get(order=order, kind="upsell")
    assert decision.followup_flagged_at is not None
    assert Event.objects.filter(order_id=order.pk, name="upsell_failed").count() == 1
    page = client.get(f"/o/{order.token}/offer").content.decode()
    assert "email you a link" in page and "confirm-button" not in page
    step1 = FollowUpSend.objects.get(order=order, step=1)
    assert followups.skip_reason(step1) == ""  # no longer counted as a taker


def test_a_payment_waiting_for_authentication_is_kept_open_until_the_default_limit(
    tenant, client_for, stripe_api_base
):
    make_catalog()
    order, attempt = _upsell_waiting_for_authentication(client_for(HOST))

    reconcile_run(now=attempt.sent_at + 23 * H)
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.REQUIRES_ACTION
    reconcile_run(now=attempt.sent_at + 24 * H + dt.timedelta(minutes=1))
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.DECLINED
    assert attempt.decline_code == CLOSED_NOT_AUTHENTICATED


def test_authentication_completed_after_the_close_is_recorded_as_the_charge_it_is(
    tenant, client_for, settings, stripe_api_base
):
    make_catalog()
    settings.PAYMENTS_ACTION_MAX_AGE_HOURS = 1
    client = client_for(HOST)
    order, attempt = _upsell_waiting_for_authentication(client)
    reconcile_run(now=attempt.sent_at + 2 * H)
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.DECLINED

    gw.authenticate(attempt.gateway_ref, attempt.client_secret)  # a tab left open
    reconcile_run(now=attempt.sent_at + 3 * H)

    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.SUCCEEDED
    assert order.lines.filter(kind="upsell").count() == 1
    assert LedgerEntry.objects.filter(line_key=f"upsell:{order.pk}", kind="charge").count() == 1
    assert not Mismatch.objects.exists()
