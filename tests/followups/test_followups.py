"""Follow-up cross-sell emails against a real local SMTP server, with time passed in."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from analytics.models import Event
from storefront import tasks
from storefront.models import Customer, FollowUpSend, FollowUpStatus, LineKind
from storefront.services import followups
from tests.followups.helpers import T0, catalog, line, paid_order
from tests.followups.smtp import text_of

H = dt.timedelta(hours=1)


def _send_all(now) -> int:
    return followups.followups_send_due(now=now)


def test_a_non_taker_gets_exactly_two_emails_at_the_offers_configured_times(tenant, smtp_mail):
    core, _, cross = catalog(delays=[6, 48])
    order = paid_order("buyer@example.com", core)

    assert _send_all(T0 + 6 * H - dt.timedelta(seconds=1)) == 0
    assert smtp_mail.messages == []
    assert _send_all(T0 + 6 * H) == 1
    assert _send_all(T0 + 6 * H + dt.timedelta(minutes=1)) == 0
    assert _send_all(T0 + 48 * H - dt.timedelta(seconds=1)) == 0
    assert len(smtp_mail.messages) == 1
    assert _send_all(T0 + 48 * H) == 1
    assert _send_all(T0 + 30 * 24 * H) == 0

    mails = smtp_mail.to("buyer@example.com")
    assert len(mails) == 2 and len(smtp_mail.messages) == 2
    first, second = mails
    assert first["Subject"] != second["Subject"]
    assert "Presets for your course" in text_of(first)
    for mail in mails:
        assert str(mail["List-Unsubscribe"]).strip().startswith("<http://t1.localhost/u/")
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    sends = list(FollowUpSend.objects.filter(order=order).order_by("step"))
    assert [(s.step, s.status, s.due_at) for s in sends] == [
        (1, FollowUpStatus.SENT, T0 + 6 * H),
        (2, FollowUpStatus.SENT, T0 + 48 * H),
    ]
    assert all(s.offer_id == cross.pk for s in sends)
    events = Event.objects.filter(name="email_sent", order_id=order.pk)
    assert sorted(e.properties["step"] for e in events) == [1, 2]
    assert {e.source for e in events} == {"email"}


def test_without_configured_delays_the_emails_go_at_24_and_72_hours(tenant, smtp_mail):
    core, _, _ = catalog()
    order = paid_order("buyer@example.com", core)

    assert list(
        FollowUpSend.objects.filter(order=order).order_by("step").values_list("due_at", flat=True)
    ) == [T0 + 24 * H, T0 + 72 * H]
    assert _send_all(T0 + 23 * H) == 0
    assert _send_all(T0 + 24 * H) == 1
    assert _send_all(T0 + 71 * H) == 0
    assert _send_all(T0 + 72 * H) == 1
    assert len(smtp_mail.to("buyer@example.com")) == 2


def test_without_a_cross_sell_offer_the_orders_upsell_is_reframed_for_the_email(tenant, smtp_mail):
    core, upsell, _ = catalog(cross_sell=False)
    order = paid_order("buyer@example.com", core)

    assert _send_all(T0 + 24 * H) == 1
    (mail,) = smtp_mail.messages
    text = text_of(mail)
    assert FollowUpSend.objects.filter(order=order, offer=upsell).count() == 2
    assert "Get more out of Photo course with Editing masterclass" in text
    assert upsell.headline not in text  # framed differently from the post-purchase page
    assert "Unsubscribe with one click: http://t1.localhost/u/" in text


def test_a_taker_an_owner_and_an_unsubscribed_buyer_get_no_email(tenant, smtp_mail):
    core, upsell, cross = catalog()
    taker = paid_order("taker@example.com", core)
    line(taker, upsell.product, kind=LineKind.UPSELL, amount=1200)
    owner_first = paid_order("owner@example.com", core, schedule=False)
    line(owner_first, cross.product, kind=LineKind.BUMP, amount=900)  # owns it already
    owner = paid_order("owner@example.com", core, schedule=False)
    FollowUpSend.objects.all().delete()
    followups.followups_schedule(order=owner, paid_at=T0)
    followups.followups_schedule(order=taker, paid_at=T0)
    unsubscribed = paid_order("gone@example.com", core)
    Customer.objects.filter(pk=unsubscribed.customer_id).update(unsubscribed_at=T0 + H)
    control = paid_order("control@example.com", core)

    sent = _send_all(T0 + 24 * H) + _send_all(T0 + 72 * H) + _send_all(T0 + 90 * 24 * H)

    assert sent == 2
    assert {m["To"] for m in smtp_mail.messages} == {"control@example.com"}
    reasons = dict(
        FollowUpSend.objects.exclude(order=control)
        .filter(step=1)
        .values_list("customer__email", "skipped_reason")
    )
    assert reasons == {
        "taker@example.com": "took_offer",
        "owner@example.com": "owns_product",
        "gone@example.com": "unsubscribed",
    }
    assert (
        not FollowUpSend.objects.exclude(order=control)
        .exclude(status=FollowUpStatus.SKIPPED)
        .exists()
    )


def test_a_buyer_who_buys_the_product_after_the_first_email_does_not_get_the_second(
    tenant, smtp_mail
):
    core, _, cross = catalog()
    paid_order("buyer@example.com", core)
    assert _send_all(T0 + 24 * H) == 1
    later = paid_order("buyer@example.com", cross.product, paid_at=T0 + 30 * H, schedule=False)
    assert later.lines.get().product_id == cross.product_id

    assert _send_all(T0 + 72 * H) == 0
    assert len(smtp_mail.messages) == 1
    assert FollowUpSend.objects.get(step=2).skipped_reason == "owns_product"


def test_a_duplicated_or_retried_task_sends_nothing_twice(tenant, smtp_mail):
    core, _, _ = catalog()
    paid_order("buyer@example.com", core)
    step1 = FollowUpSend.objects.get(step=1)
    step2 = FollowUpSend.objects.get(step=2)

    results = [followups.followup_send(send_id=step1.pk, now=T0 + 24 * H) for _ in range(3)]
    assert _send_all(T0 + 24 * H) == 0
    with_task = [tasks.followup_send.apply(kwargs={"send_id": step1.pk}).get() for _ in range(2)]
    due_runs = [tasks.followups_send_due.apply().get() for _ in range(2)]  # real now: 2025 + …

    assert results == [True, False, False]
    assert with_task == [False, False]
    assert due_runs == [1, 0]  # step 2 is long due by the real clock: once
    assert len(smtp_mail.messages) == 2
    assert sorted(m["X-Followup-Id"] for m in smtp_mail.messages) == sorted(
        [f"t1:{step1.pk}", f"t1:{step2.pk}"]
    )
    assert Event.objects.filter(name="email_sent").count() == 2


def test_the_database_refuses_a_third_step_or_a_second_row_for_a_step(tenant):
    core, _, cross = catalog()
    order = paid_order("buyer@example.com", core)
    again = paid_order("buyer@example.com", core)  # a second purchase: no second sequence

    assert FollowUpSend.objects.filter(customer=order.customer).count() == 2
    assert not FollowUpSend.objects.filter(order=again).exists()
    for step in (2, 3):
        with pytest.raises(IntegrityError), transaction.atomic():
            FollowUpSend.objects.create(
                customer=order.customer,
                order=order,
                offer=cross,
                step=step,
                due_at=T0,
                nonce=f"n{step}",
            )


def test_a_stale_claim_from_a_dead_worker_is_sent_by_the_periodic_job_and_a_fresh_one_is_not(
    tenant, smtp_mail
):
    core, _, _ = catalog()
    paid_order("buyer@example.com", core)
    step1 = FollowUpSend.objects.get(step=1)
    # A worker claimed it at 24 h and died before sending.
    FollowUpSend.objects.filter(pk=step1.pk).update(
        status=FollowUpStatus.SENDING, claimed_at=T0 + 24 * H, claims=1
    )

    assert _send_all(T0 + 24 * H + dt.timedelta(minutes=5)) == 0
    assert _send_all(T0 + 24 * H + dt.timedelta(minutes=16)) == 1
    step1.refresh_from_db()
    assert step1.status == FollowUpStatus.SENT and step1.claims == 2
    assert len(smtp_mail.messages) == 1


def test_an_smtp_failure_hands_the_row_back_and_the_retry_sends_it_once(tenant, settings, smtp):
    from devtools.services import free_port

    core, _, _ = catalog()
    paid_order("buyer@example.com", core)
    step1 = FollowUpSend.objects.get(step=1)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nobody listens
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""

    with pytest.raises(OSError):
        followups.followup_send(send_id=step1.pk, now=T0 + 24 * H)
    step1.refresh_from_db()
    assert step1.status == FollowUpStatus.SCHEDULED

    settings.EMAIL_PORT = smtp.port
    assert followups.followup_send(send_id=step1.pk, now=T0 + 25 * H) is True
    assert len(smtp.messages) == 1


def _link(mail, pattern: str) -> str:
    text = text_of(mail)
    found = re.search(pattern, text)
    assert found, text
    return urlsplit(found.group(0)).path


def test_the_emails_unsubscribe_link_works_in_one_click_and_stops_the_second_email_at_once(
    tenant, smtp_mail, client_for
):
    core, _, _ = catalog()
    paid_order("buyer@example.com", core)
    assert _send_all(T0 + 24 * H) == 1
    path = _link(smtp_mail.messages[0], r"http://t1\.localhost/u/\S+")

    page = client_for("t1.localhost").get(path)

    assert page.status_code == 200 and b"You are unsubscribed" in page.content
    assert Customer.objects.get(email="buyer@example.com").unsubscribed_at is not None
    assert _send_all(T0 + 72 * H) == 0
    assert len(smtp_mail.messages) == 1
    again = client_for("t1.localhost").post(path)  # RFC 8058 POST from a mail client, twice
    assert again.status_code == 200


def test_a_forged_or_foreign_unsubscribe_link_gets_a_readable_page_and_changes_nothing(
    tenant, client_for, other_tenant
):
    core, _, _ = catalog()
    order = paid_order("buyer@example.com", core)
    foreign = followups.unsubscribe_token(customer_id=order.customer_id, schema="t2")

    forged = client_for("t1.localhost").get("/u/not-a-signature")
    wrong_store = client_for("t1.localhost").get(f"/u/{foreign}")

    assert forged.status_code == 400 and b"not valid" in forged.content
    assert wrong_store.status_code == 400 and b"another store" in wrong_store.content
    assert Customer.objects.get(pk=order.customer_id).unsubscribed_at is None


def test_without_a_saved_card_the_email_links_to_a_prefilled_checkout(tenant, smtp_mail):
    core, _, cross = catalog()
    paid_order("buyer@example.com", core)
    assert _send_all(T0 + 24 * H) == 1

    path = _link(smtp_mail.messages[0], r"http://t1\.localhost/checkout/\S+")
    assert path == f"/checkout/{cross.product.slug}/"
    text = text_of(smtp_mail.messages[0])
    assert "email=buyer%40example.com" in text and "utm_source=email" in text
    assert FollowUpSend.objects.get(step=1).link_kind == "checkout"


def test_scheduling_never_raises_into_the_payment_recording(tenant, monkeypatch):
    core, _, _ = catalog()
    order = paid_order("buyer@example.com", core, schedule=False)

    def boom(**kwargs):
        raise RuntimeError("offers table is locked")

    monkeypatch.setattr(followups.schedule, "followup_offer_for", boom)
    assert followups.followups_schedule(order=order, paid_at=timezone.now()) == 0
