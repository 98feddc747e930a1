"""One-click upsell and downsell over the real localstripe: gate, exactly once, 3-D Secure."""

import re

import pytest

from analytics.models import Event
from core.models import OutboxMessage
from offers.models import DecisionStatus, OfferDecision
from payments import services as payments
from payments.gateway import PaymentResult, PaymentStatus, get_gateway, use_gateway
from payments.models import AttemptStatus, ChargeAttempt, LedgerEntry
from storefront.models import Order, OrderStatus
from storefront.services import upsell
from tests import gateway_helpers as gw
from tests.upsell.helpers import PendingPrimaryGateway, buy, make_catalog, offer_token

pytestmark = pytest.mark.gateway

HOST = "t1.localhost"
# 1200 net + 19% VAT (228)
UPSELL_TOTAL = 1428
DOWNSELL_TOTAL = 700 + 133


@pytest.fixture
def catalog(tenant):
    return make_catalog()


@pytest.fixture
def slow_bank(stripe_api_base):
    gateway = PendingPrimaryGateway(get_gateway())
    use_gateway(gateway)
    yield gateway
    use_gateway(None)


def _intents(purpose):
    return [i for i in gw.payment_intents() if i.metadata.to_dict().get("purpose") == purpose]


def _events(order, name):
    return list(Event.objects.filter(order_id=order.pk, name=name))


def test_the_offer_shows_price_tax_when_it_is_charged_and_refund_terms_before_the_click(
    catalog, client_for
):
    client = client_for(HOST)
    order = buy(client)
    assert client.get(f"/o/{order.token}/next")["Location"] == f"/o/{order.token}/offer"
    page = client.get(f"/o/{order.token}/offer")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Add the editing masterclass" in html and "Finish every photo" in html
    assert 'id="offer-tax">$2.28' in html
    assert "$14.28" in html and "VAT 19%" in html
    assert "Charged right away" in html and "Refundable within 30 days, no questions asked." in html
    client.get(f"/o/{order.token}/offer")  # a refresh is the same display
    assert len(_events(order, "upsell_offered")) == 1
    assert len(gw.payment_intents()) == 1  # displaying charges nothing


def test_accepting_charges_the_vaulted_card_once_and_the_thanks_page_lists_three_lines(
    catalog, client_for
):
    _, bump, upsell_offer, _ = catalog
    client = client_for(HOST)
    order = buy(client, bump=bump.pk)
    token = offer_token(client, order)

    accepted = client.post(f"/o/{order.token}/offer/accept", {"token": token})
    assert accepted.status_code == 303
    assert client.get(accepted["Location"])["Location"] == f"/o/{order.token}/thanks"

    intents = gw.payment_intents()
    assert len(intents) == 2
    (upsell_intent,) = _intents(f"order:{order.pk}:upsell")
    assert upsell_intent.amount == UPSELL_TOTAL and upsell_intent.status == "succeeded"
    line = order.lines.get(kind="upsell")
    assert (line.net_amount, line.tax_amount, line.total_amount) == (1200, 228, UPSELL_TOTAL)
    assert line.offer_id == upsell_offer.pk and line.tax_country == "DE"
    entry = LedgerEntry.objects.get(line_key=line.line_key)
    assert entry.amount == UPSELL_TOTAL and entry.gateway_ref == upsell_intent.id
    thanks = client.get(f"/o/{order.token}/thanks").content.decode()
    assert len(re.findall(r'<tr data-kind="', thanks)) == 3
    assert "Editing masterclass" in thanks
    names = set(Event.objects.filter(order_id=order.pk).values_list("name", flat=True))
    assert {"upsell_offered", "upsell_accepted", "upsell_charged"} <= names


def test_accepting_while_the_primary_is_pending_charges_nothing_until_it_settles_then_once(
    catalog, client_for, slow_bank
):
    client = client_for(HOST)
    order = buy(client, pay=False)
    paid = client.post(f"/o/{order.token}/pay", {"setup_intent": order.setup_ref})
    assert paid.json()["status"] == "processing"
    token = offer_token(client, order)
    assert (
        "Charged only after your first payment is confirmed"
        in client.get(f"/o/{order.token}/offer").content.decode()
    )

    client.post(f"/o/{order.token}/offer/accept", {"token": token})
    upsell.release_gated_offers(order_id=order.pk)  # a worker running early changes nothing
    attempt = ChargeAttempt.objects.get(purpose=f"order:{order.pk}:upsell")
    assert attempt.status == AttemptStatus.CREATED and attempt.off_session
    assert slow_bank.sent == [f"order:{order.pk}:primary"]
    assert gw.payment_intents() == []
    assert (
        "waiting for your first payment" in client.get(f"/o/{order.token}/offer").content.decode()
    )
    assert client.get(f"/o/{order.token}/offer/status").json()["stage"] == "queued"

    # The webhook / reconciliation settles the primary: the gate is released by a task.
    primary = ChargeAttempt.objects.get(purpose=f"order:{order.pk}:primary")
    payments.attempt_record_result(
        attempt_id=primary.pk,
        result=PaymentResult(
            PaymentStatus.SUCCEEDED, payment_ref="pi_slow_primary", amount=primary.money
        ),
    )
    assert OutboxMessage.objects.filter(
        task_name="storefront.release_gated_offers", kwargs={"order_id": order.pk}
    ).exists()
    upsell.release_gated_offers(order_id=order.pk)
    upsell.release_gated_offers(order_id=order.pk)  # delivered twice

    assert slow_bank.sent == [f"order:{order.pk}:primary", f"order:{order.pk}:upsell"]
    intents = gw.payment_intents()
    assert (
        len(intents) == 1 and intents[0].status == "succeeded" and intents[0].amount == UPSELL_TOTAL
    )
    assert order.lines.filter(kind="upsell").count() == 1


def test_a_queued_upsell_is_cancelled_with_no_charge_when_the_primary_fails(
    catalog, client_for, slow_bank
):
    client = client_for(HOST)
    order = buy(client, pay=False)
    client.post(f"/o/{order.token}/pay", {"setup_intent": order.setup_ref})
    client.post(f"/o/{order.token}/offer/accept", {"token": offer_token(client, order)})

    primary = ChargeAttempt.objects.get(purpose=f"order:{order.pk}:primary")
    payments.attempt_record_result(
        attempt_id=primary.pk,
        result=PaymentResult(
            PaymentStatus.DECLINED, payment_ref="pi_slow_primary", decline_code="insufficient_funds"
        ),
    )
    upsell.release_gated_offers(order_id=order.pk)

    attempt = ChargeAttempt.objects.get(purpose=f"order:{order.pk}:upsell")
    assert attempt.status == AttemptStatus.CANCELED
    assert slow_bank.sent == [f"order:{order.pk}:primary"] and gw.payment_intents() == []
    assert not order.lines.filter(kind="upsell").exists()
    assert [e.reason for e in _events(order, "upsell_failed")] == ["primary_failed"]
    page = client.get(f"/o/{order.token}/offer").content.decode()
    assert "Your first payment did not go through" in page and "was not charged" in page


def test_a_card_declined_at_charge_time_shows_the_downsell(tenant, client_for, stripe_api_base):
    make_catalog()
    client = client_for(HOST)
    # 4000000000000341 attaches fine and declines when charged: the primary declines too, so
    # the vaulted card is swapped for it after a good checkout (the buyer's bank changed its mind).
    order = buy(client)
    token = offer_token(client, order)
    from payments.models import SavedPaymentMethod

    bad_pm = gw._client().v1.payment_methods.create(
        params={
            "type": "card",
            "card": {
                "number": gw.CARD_DECLINE_AT_CHARGE,
                "exp_month": 12,
                "exp_year": 2034,
                "cvc": "123",
            },
        }
    )
    method = SavedPaymentMethod.objects.get()
    gw._client().v1.payment_methods.attach(
        bad_pm.id, params={"customer": method.customer.gateway_ref}
    )
    SavedPaymentMethod.objects.filter(pk=method.pk).update(gateway_ref=bad_pm.id)

    accepted = client.post(f"/o/{order.token}/offer/accept", {"token": token})
    page = client.get(accepted["Location"]).content.decode()
    assert "Just the cheat sheet" in page and 'data-kind="downsell"' in page
    assert "$8.33" in page
    attempt = ChargeAttempt.objects.get(purpose=f"order:{order.pk}:upsell")
    assert attempt.status == AttemptStatus.DECLINED
    assert not order.lines.filter(kind="upsell").exists()
    assert _events(order, "upsell_failed")[0].reason
    assert len(_events(order, "downsell_offered")) == 1
    assert [i.status for i in _intents(f"order:{order.pk}:upsell")] == ["requires_payment_method"]


def test_a_3ds_card_is_not_charged_silently_and_the_on_session_step_completes_it(
    catalog, client_for
):
    client = client_for(HOST)
    order = buy(client, card=gw.CARD_3DS)
    token = offer_token(client, order)
    client.post(f"/o/{order.token}/offer/accept", {"token": token})

    attempt = ChargeAttempt.objects.get(purpose=f"order:{order.pk}:upsell")
    assert attempt.status == AttemptStatus.REQUIRES_ACTION
    assert not order.lines.filter(kind="upsell").exists()
    assert not LedgerEntry.objects.filter(line_key=f"upsell:{order.pk}").exists()
    page = client.get(f"/o/{order.token}/offer").content.decode()
    assert "confirm-button" in page and attempt.client_secret in page

    gw.authenticate(attempt.gateway_ref, attempt.client_secret)  # confirmCardPayment in the page
    confirmed = client.post(f"/o/{order.token}/offer/confirm")
    assert confirmed.status_code == 200 and confirmed.json()["stage"] == "charged"
    assert order.lines.filter(kind="upsell").count() == 1
    upsell_intents = _intents(f"order:{order.pk}:upsell")
    assert [i.status for i in upsell_intents] == ["succeeded"]


def test_an_abandoned_confirmation_is_flagged_for_the_follow_up_email(catalog, client_for):
    client = client_for(HOST)
    order = buy(client, card=gw.CARD_3DS)
    client.post(f"/o/{order.token}/offer/accept", {"token": offer_token(client, order)})
    response = client.post(f"/o/{order.token}/offer/abandon")
    assert response.status_code == 303
    decision = OfferDecision.objects.get(order=order, kind="upsell")
    assert decision.followup_flagged_at is not None
    assert decision.followup_reason == "authentication_abandoned"
    assert [e.reason for e in _events(order, "upsell_failed")] == ["authentication_abandoned"]
    assert "email you a link" in client.get(f"/o/{order.token}/offer").content.decode()
    assert not order.lines.filter(kind="upsell").exists()


def test_a_failed_authentication_flags_the_offer_for_follow_up_and_charges_nothing(
    catalog, client_for
):
    client = client_for(HOST)
    order = buy(client, card=gw.CARD_3DS)
    client.post(f"/o/{order.token}/offer/accept", {"token": offer_token(client, order)})
    attempt = ChargeAttempt.objects.get(purpose=f"order:{order.pk}:upsell")
    gw.authenticate(attempt.gateway_ref, attempt.client_secret, success=False)
    assert client.post(f"/o/{order.token}/offer/confirm").json()["stage"] == "closed"
    decision = OfferDecision.objects.get(order=order, kind="upsell")
    assert decision.followup_flagged_at is not None
    assert not order.lines.filter(kind="upsell").exists()


def test_a_crash_between_the_gateway_call_and_recording_is_finished_once_by_reconciliation(
    catalog, client_for, monkeypatch
):
    client = client_for(HOST)
    order = buy(client)
    token = offer_token(client, order)
    real_record = payments.attempt_record_result
    crashes = []

    def crash_once(**kwargs):
        if not crashes:
            crashes.append(kwargs["attempt_id"])
            raise RuntimeError("worker killed after the gateway answered")
        return real_record(**kwargs)

    monkeypatch.setattr(payments, "attempt_record_result", crash_once)
    accepted = client.post(f"/o/{order.token}/offer/accept", {"token": token})
    assert accepted.status_code == 303  # the buyer sees "charging", not a 500
    attempt = ChargeAttempt.objects.get(purpose=f"order:{order.pk}:upsell")
    assert crashes == [attempt.pk] and attempt.status == AttemptStatus.IN_FLIGHT
    assert client.get(f"/o/{order.token}/offer/status").json()["stage"] == "charging"
    upsell.release_gated_offers(order_id=order.pk)  # a retry must not send it again

    payments.attempt_refresh(attempt_id=attempt.pk)  # what reconciliation calls
    payments.attempt_refresh(attempt_id=attempt.pk)

    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.SUCCEEDED and attempt.sends == 1
    upsell_intents = _intents(f"order:{order.pk}:upsell")
    assert len(upsell_intents) == 1
    assert order.lines.filter(kind="upsell").count() == 1
    assert LedgerEntry.objects.filter(line_key=f"upsell:{order.pk}").count() == 1


def test_declining_shows_the_downsell_and_accepting_it_charges_the_downsell_once(
    catalog, client_for
):
    client = client_for(HOST)
    order = buy(client)
    declined = client.post(f"/o/{order.token}/offer/decline", {"token": offer_token(client, order)})
    assert declined.status_code == 303
    page = client.get(f"/o/{order.token}/offer").content.decode()
    assert 'data-kind="downsell"' in page
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)
    client.post(f"/o/{order.token}/offer/accept", {"token": token})
    line = order.lines.get(kind="downsell")
    assert line.total_amount == DOWNSELL_TOTAL
    assert len(_events(order, "upsell_declined")) == 1
    assert client.get(f"/o/{order.token}/offer")["Location"] == f"/o/{order.token}/thanks"
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
    assert OfferDecision.objects.get(order=order, kind="upsell").status == DecisionStatus.DECLINED


def test_a_confirmation_left_waiting_is_flagged_by_the_sweep_once(catalog, client_for):
    import datetime as dt

    from django.utils import timezone

    from storefront.tasks import flag_abandoned_confirmations

    client = client_for(HOST)
    order = buy(client, card=gw.CARD_3DS)
    client.post(f"/o/{order.token}/offer/accept", {"token": offer_token(client, order)})
    assert flag_abandoned_confirmations(older_than_minutes=30) == 0  # still fresh
    ChargeAttempt.objects.filter(purpose=f"order:{order.pk}:upsell").update(
        sent_at=timezone.now() - dt.timedelta(minutes=31)
    )
    assert flag_abandoned_confirmations(older_than_minutes=30) == 1
    assert flag_abandoned_confirmations(older_than_minutes=30) == 0
    decision = OfferDecision.objects.get(order=order, kind="upsell")
    assert decision.followup_flagged_at is not None
    assert len(_events(order, "upsell_failed")) == 1
