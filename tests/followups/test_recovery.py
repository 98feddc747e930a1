"""Abandoned-checkout reminders against a real local SMTP server, through the real checkout."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.utils import timezone

from analytics.models import Event
from storefront.models import (
    EmailSequence,
    FollowUpSend,
    FollowUpStatus,
    Order,
    OrderStatus,
    StoreSettings,
)
from storefront.services import followups
from storefront.services.followups import recovery
from tests import gateway_helpers as gw
from tests.catalog import catalog
from tests.concurrency import in_threads
from tests.factories import CouponFactory
from tests.followups.smtp import text_of

pytestmark = pytest.mark.gateway

HOST = "t1.localhost"
H = dt.timedelta(hours=1)
LINK_RE = re.compile(r"http://t1\.localhost(/r/[^\s\"<]+)")


def _start(client, **data):
    payload = {"email": "leaver@example.com", "country": "DE", "region": "", "save_card": "on"}
    payload.update(data)
    response = client.post("/checkout/course/start", payload)
    assert response.status_code == 200, response.content
    return response.json()


def _pay(client, body):
    order = Order.objects.get(token=body["order"])
    gw.confirm_card_setup(order.setup_ref)
    paid = client.post(body["pay_url"], {"setup_intent": order.setup_ref}).json()
    assert paid["status"] == "paid", paid
    return order


def _store(**fields) -> None:
    StoreSettings.objects.filter(pk=StoreSettings.current().pk).update(**fields)


def _reminders(**filters):
    return FollowUpSend.objects.filter(sequence=EmailSequence.RECOVERY, **filters).order_by("step")


def _send_due(after: dt.timedelta) -> int:
    return followups.followups_send_due(now=timezone.now() + after)


def test_a_buyer_who_asked_for_reminders_and_left_gets_two_at_1_and_24_hours(
    tenant, client_for, stripe_api_base, smtp_mail
):
    catalog()
    started = _start(client_for(HOST), remind="on")
    order = Order.objects.get(token=started["order"])
    assert order.reminder_consent is True
    assert [(s.step, s.due_at - order.created_at) for s in _reminders()] == [(1, H), (2, 24 * H)]

    assert _send_due(H - dt.timedelta(minutes=1)) == 0
    assert _send_due(H + dt.timedelta(minutes=1)) == 1
    assert _send_due(2 * H) == 0
    assert _send_due(24 * H + dt.timedelta(minutes=1)) == 1
    assert _send_due(30 * 24 * H) == 0

    first, second = smtp_mail.to("leaver@example.com")
    assert first["Subject"] == "You left Photo course in your checkout"
    assert second["Subject"].startswith("Last reminder")
    for mail in (first, second):
        assert LINK_RE.search(text_of(mail))
        assert str(mail["List-Unsubscribe"]).strip().startswith("<http://t1.localhost/u/")
    assert [s.status for s in _reminders()] == [FollowUpStatus.SENT] * 2
    sent = Event.objects.filter(name="email_sent", order_id=order.pk)
    assert {(e.properties["sequence"], e.medium) for e in sent} == {("recovery", "recovery")}


def test_no_reminder_without_the_buyers_consent_or_with_the_store_switched_off(
    tenant, client_for, stripe_api_base, smtp_mail
):
    catalog()
    _start(client_for(HOST))  # the box left unticked
    assert not _reminders().exists()
    _store(recovery_enabled=False)
    _start(client_for(HOST), remind="on", email="other@example.com")
    assert not _reminders().exists()
    assert _send_due(48 * H) == 0 and smtp_mail.messages == []


def test_the_reminder_leads_back_to_the_prefilled_checkout_and_paying_stops_the_second(
    tenant, client_for, stripe_api_base, smtp_mail
):
    shop = catalog()
    _store(recovery_delays_hours=[2, 48], recovery_coupon=CouponFactory(code="COMEBACK10"))
    client = client_for(HOST)
    abandoned = _start(client, remind="on", bump=shop.bump.pk, add_bump="on", region="BE")
    old = Order.objects.get(token=abandoned["order"])
    assert [s.due_at - old.created_at for s in _reminders()] == [2 * H, 48 * H]
    assert _send_due(2 * H + dt.timedelta(minutes=1)) == 1
    [mail] = smtp_mail.to("leaver@example.com")
    assert "COMEBACK10" in text_of(mail)
    path = LINK_RE.search(text_of(mail)).group(1)

    fresh = client_for(HOST)  # another device: the link alone carries everything
    landing = fresh.get(path)
    assert landing.status_code == 302
    target = urlsplit(landing["Location"])
    query = parse_qs(target.query)
    assert target.path == "/checkout/course/"
    assert query["email"] == ["leaver@example.com"] and query["coupon"] == ["COMEBACK10"]
    assert query["bump"] == ["1"] and query["utm_medium"] == ["recovery"]
    page = fresh.get(landing["Location"]).content.decode()
    assert 'value="leaver@example.com"' in page and 'value="COMEBACK10"' in page
    assert "Discount (COMEBACK10, 20% off)" in page

    back = _start(
        fresh,
        remind="on",
        bump=shop.bump.pk,
        add_bump="on",
        coupon="COMEBACK10",
        recovery=query["recovery"][0],
    )
    new = _pay(fresh, back)
    new.refresh_from_db()
    assert new.status == OrderStatus.PAID and new.recovered_from_id == old.pk
    assert new.coupon_code == "COMEBACK10"
    assert _send_due(72 * H) == 0
    assert [(s.step, s.status, s.skipped_reason) for s in _reminders()] == [
        (1, FollowUpStatus.SENT, ""),
        (2, FollowUpStatus.SKIPPED, "purchased"),
    ]
    assert len(smtp_mail.messages) == 1


def test_an_unsubscribe_stops_the_reminders(tenant, client_for, stripe_api_base, smtp_mail):
    catalog()
    started = _start(client_for(HOST), remind="on")
    order = Order.objects.get(token=started["order"])
    assert _send_due(H + dt.timedelta(minutes=1)) == 1
    token = followups.unsubscribe_token(customer_id=order.customer_id, schema="t1")
    assert client_for(HOST).get(f"/u/{token}").status_code == 200
    assert _send_due(25 * H) == 0
    assert [s.status for s in _reminders()] == [FollowUpStatus.SENT, FollowUpStatus.SKIPPED]
    assert len(smtp_mail.messages) == 1


def test_leaving_many_checkouts_still_gets_at_most_two_reminders_per_product(
    tenant, client_for, stripe_api_base, smtp_mail
):
    catalog()
    client = client_for(HOST)
    for _ in range(3):
        _start(client, remind="on")
    assert _reminders().count() == 2
    assert _send_due(30 * 24 * H) == 2
    assert len(smtp_mail.to("leaver@example.com")) == 2


def test_a_buyer_who_bought_in_a_later_checkout_gets_no_reminder_for_the_earlier_one(
    tenant, client_for, stripe_api_base, smtp_mail
):
    catalog()
    client = client_for(HOST)
    left = _start(client, remind="on")
    _pay(client, _start(client))  # bought the same product in a later checkout, no reminders
    assert Order.objects.get(token=left["order"]).status == OrderStatus.PENDING
    assert _send_due(30 * 24 * H) == 0 and smtp_mail.messages == []
    assert {s.skipped_reason for s in _reminders()} == {"purchased"}


def test_a_forged_or_foreign_reminder_link_gets_a_readable_refusal(
    tenant, client_for, stripe_api_base
):
    catalog()
    _start(client_for(HOST), remind="on")
    send = _reminders().first()
    forged = recovery.recovery_token(send=send, schema="t1")[:-2] + "xx"
    foreign = recovery.recovery_token(send=send, schema="t2")
    for token in (forged, foreign, "nonsense"):
        response = client_for(HOST).get(f"/r/{token}")
        assert response.status_code == 400
        assert "could not verify this link" in response.content.decode()
    # A start that carries a bad link still works; it simply credits no reminder.
    order = Order.objects.get(pk=send.order_id)
    again = _start(client_for(HOST), recovery=foreign)
    assert Order.objects.get(token=again["order"]).recovered_from_id is None
    assert order.recoveries.count() == 0


def test_the_periodic_send_run_twice_at_once_sends_each_reminder_once(
    live_tenant, client_for, stripe_api_base, smtp_mail
):
    catalog()
    _start(client_for(HOST), remind="on")
    FollowUpSend.objects.filter(step=1).update(due_at=timezone.now() - H)

    def run():
        connection.set_tenant(live_tenant)
        return followups.followups_send_due()

    results, errors = in_threads(2, run)
    assert errors == [] and sorted(results) == [0, 1]
    assert len(smtp_mail.messages) == 1
    step1 = FollowUpSend.objects.get(step=1)
    assert (step1.status, step1.claims) == (FollowUpStatus.SENT, 1)
