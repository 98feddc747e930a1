"""The buyer's emails (Notice rows, each queued once per occasion with the change that causes
it), the card expiry reminders, and a paid renewal's one outbox message."""

from __future__ import annotations

import datetime as dt

from django.db import transaction

from core.loops import each_record, quarantined_pks
from core.tasks import enqueue
from subscriptions.models import (
    BILLED_STATUSES,
    DunningSettings,
    Notice,
    Subscription,
    SubscriptionStatus,
)
from subscriptions.notices import RENEWED_PREFIX

LOOP_EXPIRY = "subscriptions.expiry_reminders"


def renewed_queue(sub: Subscription, number: int) -> None:
    """The receipt email and the `subscription.renewed` webhook of a paid period, in one
    outbox message (subscriptions.renewed): one send to the broker per renewal. The notice
    row is written by one upsert (no lookup, no savepoint); a period is paid once (under its
    lock), and were its row there already, the send is claimed on the row, so still once."""
    from subscriptions import public

    notice = Notice.objects.bulk_create(
        [Notice(subscription=sub, key=f"{RENEWED_PREFIX}{number}", kind="renewal_receipt")],
        update_conflicts=True,
        unique_fields=["subscription", "key"],
        update_fields=["kind"],
    )[0]
    enqueue(
        "subscriptions.renewed",
        notice_id=notice.pk,
        webhook=public.webhook_notice(sub=sub, event_type="subscription.renewed", key=str(number)),
    )


# --- emails ---------------------------------------------------------------------------------


def notice_queue(*, sub: Subscription, key: str, kind: str) -> None:
    """Queue an email once per (subscription, key), with the change that causes it."""
    notice, created = Notice.objects.get_or_create(
        subscription=sub, key=key[:60], defaults={"kind": kind}
    )
    if created:
        enqueue("subscriptions.notice_send", notice_id=notice.pk)


def expiry_reminders_queue(*, now: dt.datetime) -> int:
    """A reminder for each running subscription whose card expires within the store's window
    (30 days by default), once per card expiry."""
    days = DunningSettings.current().expiry_reminder_days
    horizon = (now + dt.timedelta(days=days)).date()
    made = 0
    candidates = Subscription.objects.filter(
        status__in=BILLED_STATUSES + (SubscriptionStatus.PAST_DUE,),
        card_exp_year__gt=0,
        card_exp_month__gt=0,
    ).exclude(pk__in=quarantined_pks(LOOP_EXPIRY))

    def remind(sub: Subscription) -> bool:
        # A card is valid through the last day of its expiry month.
        year, month = sub.card_exp_year, sub.card_exp_month
        last_day = dt.date(year + (month // 12), month % 12 + 1, 1) - dt.timedelta(days=1)
        if last_day > horizon or last_day < now.date():
            return False
        with transaction.atomic():
            notice_queue(sub=sub, key=f"expiry:{year}-{month:02d}", kind="card_expiring")
        return True

    run = each_record(LOOP_EXPIRY, candidates, remind, key=lambda s: s.pk)
    made = sum(1 for r in run.results if r)
    return made
