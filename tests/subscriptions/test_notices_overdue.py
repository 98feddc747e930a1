"""Subscription notices whose task was lost (subscriptions.notices.notices_send_overdue, run
with each store's renewals on beat): sent once 10 minutes after they were made, never sooner,
not while a live worker holds the claim, and taken over from a worker that died holding it."""

import datetime as dt

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from analytics.services import notice_deliver
from core.models import LoopFailure, OutboxMessage
from partners.models import WebhookDelivery, WebhookSubscription
from partners.services import webhook_secret_new
from subscriptions import notices
from subscriptions.models import Notice
from subscriptions.services import renewals_run
from subscriptions.services.notify import notice_queue, renewed_queue
from tests.loops_support import failing_for
from tests.subscriptions.helpers import plan, start

pytestmark = pytest.mark.gateway


def _lost_notice(sub, key: str, *, made_ago: dt.timedelta) -> Notice:
    notice_queue(sub=sub, key=key, kind="card_expiring")
    OutboxMessage.objects.filter(task_name="subscriptions.notice_send").delete()  # lost
    notice = Notice.objects.get(subscription=sub, key=key)
    Notice.objects.filter(pk=notice.pk).update(created_at=timezone.now() - made_ago)
    return notice


def test_a_notice_whose_task_was_lost_is_sent_once_by_the_renewals_run(tenant):
    sub = start(plan(), started_at=timezone.now(), email="sub@example.com")
    notice = _lost_notice(sub, "expiry:2027-01", made_ago=dt.timedelta(minutes=5))
    mail.outbox = []
    assert notices.notices_send_overdue() == 0  # its task may still be on its way
    assert mail.outbox == []

    Notice.objects.filter(pk=notice.pk).update(created_at=timezone.now() - dt.timedelta(hours=1))
    assert renewals_run().notices_late == 1
    [message] = mail.outbox
    assert message.to == ["sub@example.com"]
    assert message.subject == notices.SUBJECTS["card_expiring"]
    assert renewals_run().notices_late == 0
    assert notices.notice_send(notice_id=notice.pk) is False  # the task, late: nothing
    assert len(mail.outbox) == 1


def test_a_live_claim_is_left_alone_and_a_dead_workers_claim_is_taken_over(tenant):
    sub = start(plan(), started_at=timezone.now())
    live = _lost_notice(sub, "a", made_ago=dt.timedelta(hours=1))
    dead = _lost_notice(sub, "b", made_ago=dt.timedelta(hours=1))
    now = timezone.now()
    Notice.objects.filter(pk=live.pk).update(claimed_at=now)
    Notice.objects.filter(pk=dead.pk).update(claimed_at=now - notices.CLAIM_STALE * 2)
    mail.outbox = []

    assert notices.notices_send_overdue() == 1
    assert Notice.objects.get(pk=dead.pk).sent_at is not None
    assert Notice.objects.get(pk=live.pk).sent_at is None
    assert len(mail.outbox) == 1


def test_old_notices_are_not_sent_late_and_one_failing_does_not_stop_the_others(
    tenant, monkeypatch
):
    sub = start(plan(), started_at=timezone.now())
    _lost_notice(sub, "old", made_ago=notices.NOTICE_WINDOW + dt.timedelta(hours=1))
    broken = _lost_notice(sub, "broken", made_ago=dt.timedelta(hours=2))
    fine = _lost_notice(sub, "fine", made_ago=dt.timedelta(hours=1))
    real = notices.notice_send
    monkeypatch.setattr(
        notices, "notice_send", failing_for(real, keyword="notice_id", bad=broken.pk)
    )
    mail.outbox = []

    assert notices.notices_send_overdue() == 1
    assert Notice.objects.get(pk=fine.pk).sent_at is not None
    assert LoopFailure.objects.get(loop=notices.LOOP_NOTICES).record_id == str(broken.pk)
    monkeypatch.setattr(notices, "notice_send", real)
    assert notices.notices_send_overdue() == 1
    assert len(mail.outbox) == 2
    assert Notice.objects.filter(sent_at__isnull=True).values_list("key", flat=True).get() == "old"


def _renewing_with_a_partner():
    """A subscription, and a partner listening for `subscription.renewed`."""
    WebhookSubscription.objects.create(
        url="https://partner.example/hooks",
        event_types=["subscription.renewed"],
        secret=webhook_secret_new(),
    )
    return start(plan(), started_at=timezone.now(), email="renew@example.com")


def test_a_lost_renewal_message_gets_its_receipt_and_its_partner_webhook_once(tenant):
    sub = _renewing_with_a_partner()
    with transaction.atomic():
        renewed_queue(sub, 2)
    lost = OutboxMessage.objects.filter(task_name="subscriptions.renewed")
    assert lost.count() == 1
    lost.delete()  # the receipt and the webhook were in this one message
    notice = Notice.objects.get(subscription=sub, kind="renewal_receipt")
    Notice.objects.filter(pk=notice.pk).update(created_at=timezone.now() - dt.timedelta(hours=1))
    mail.outbox = []

    assert notices.notices_send_overdue() == 1
    assert [m.to for m in mail.outbox] == [["renew@example.com"]]
    (delivery,) = WebhookDelivery.objects.all()
    assert delivery.event_name == "subscription.renewed"
    assert delivery.payload["id"] == sub.pk

    assert notices.notices_send_overdue() == 0
    assert len(mail.outbox) == 1 and WebhookDelivery.objects.count() == 1


def test_a_renewal_whose_webhook_went_out_but_whose_email_never_did_gets_no_second_webhook(
    tenant,
):
    """The renewed task handed the webhook over, then its email's retries were spent while the
    mail server was down: the sweep sends the email; the webhook's key dedupes it."""
    sub = _renewing_with_a_partner()
    with transaction.atomic():
        renewed_queue(sub, 3)
    (message,) = OutboxMessage.objects.filter(task_name="subscriptions.renewed")
    notice_deliver(**message.kwargs["webhook"])  # the task's first step, then SMTP failed
    assert WebhookDelivery.objects.count() == 1
    Notice.objects.filter(subscription=sub).update(
        created_at=timezone.now() - dt.timedelta(hours=1)
    )
    mail.outbox = []

    assert notices.notices_send_overdue() == 1
    assert [m.to for m in mail.outbox] == [["renew@example.com"]]
    assert WebhookDelivery.objects.count() == 1
