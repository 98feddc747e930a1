"""Changes to a subscription by its buyer (cancel at period end, resume, a new card) and by the
creator (cancel now, pause, restart, refund the last payment). Each moves the subscription
through `subscription_status_move` and is recorded in its history."""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.utils import timezone

from core import orderkeys
from payments import services as payments
from subscriptions.models import (
    BILLED_STATUSES,
    PeriodStatus,
    PlanKind,
    Subscription,
    SubscriptionPeriod,
    SubscriptionStatus,
)
from subscriptions.services.billing import (
    SubscriptionRefused,
    _history,
    notice_queue,
    retry_charge,
    subscription_status_move,
)

logger = logging.getLogger(__name__)


# --- changes by the buyer and the creator ---------------------------------------------------


def subscription_cancel_at_period_end(*, subscription_id: int, by: str) -> Subscription:
    with transaction.atomic():
        sub = Subscription.objects.select_for_update().get(pk=subscription_id)
        if sub.status not in BILLED_STATUSES + (SubscriptionStatus.PAST_DUE,):
            raise SubscriptionRefused(
                "This subscription is not running, so it cannot be cancelled."
            )
        if sub.kind == PlanKind.INSTALMENTS:
            raise SubscriptionRefused("A payment plan runs to its last instalment.")
        if not sub.cancel_at_period_end:
            sub.cancel_at_period_end = True
            sub.save(update_fields=["cancel_at_period_end"])
            _history(sub, "cancel_requested", f"by {by}; ends {sub.paid_through:%Y-%m-%d}")
            notice_queue(sub=sub, key=f"cancel:{sub.next_period}", kind="cancel_confirmed")
        return sub


def subscription_resume(*, subscription_id: int, by: str) -> Subscription:
    with transaction.atomic():
        sub = Subscription.objects.select_for_update().get(pk=subscription_id)
        if not sub.cancel_at_period_end or sub.status == SubscriptionStatus.CANCELED:
            raise SubscriptionRefused("There is no pending cancellation to undo.")
        sub.cancel_at_period_end = False
        sub.save(update_fields=["cancel_at_period_end"])
        _history(sub, "resumed", f"by {by}")
        notice_queue(sub=sub, key=f"resume:{sub.next_period}", kind="resume_confirmed")
        return sub


def subscription_cancel_now(*, subscription_id: int, by: str, reason: str = "canceled") -> bool:
    """The creator ends it at once (access stops); nothing more is billed."""
    with transaction.atomic():
        sub = Subscription.objects.select_for_update().get(pk=subscription_id)
        moved = subscription_status_move(
            sub=sub,
            to=SubscriptionStatus.CANCELED,
            ended_at=timezone.now(),
            next_charge_at=None,
            end_reason=reason[:40],
        )
        if moved:
            _history(sub, "canceled", f"by {by}")
        return moved


def subscription_pause(*, subscription_id: int, by: str) -> bool:
    with transaction.atomic():
        sub = Subscription.objects.select_for_update().get(pk=subscription_id)
        moved = subscription_status_move(sub=sub, to=SubscriptionStatus.PAUSED)
        if moved:
            _history(sub, "paused", f"by {by}")
        return moved


def subscription_unpause(*, subscription_id: int, by: str, now: dt.datetime | None = None) -> bool:
    """Billing restarts from the next period after `now` on the same anchor."""
    now = now or timezone.now()
    with transaction.atomic():
        sub = Subscription.objects.select_for_update().get(pk=subscription_id)
        n = sub.next_period
        while sub.period_bounds(n)[0] < now:
            n += 1
        moved = subscription_status_move(
            sub=sub,
            to=SubscriptionStatus.ACTIVE,
            next_period=n,
            next_charge_at=sub.period_bounds(n)[0],
        )
        if moved:
            _history(sub, "unpaused", f"by {by}; next charge period {n}")
        return moved


def subscription_card_update(
    *, subscription_id: int, payment_method_ref: str, now: dt.datetime | None = None
) -> int | None:
    """The buyer saved a new card (SetupIntent page): renewals use it from now on, and a
    failed period is retried at once. Returns the retry's attempt id, if one was made."""
    with transaction.atomic():
        sub = Subscription.objects.select_for_update().get(pk=subscription_id)
        Subscription.objects.filter(customer_ref=sub.customer_ref).exclude(
            status=SubscriptionStatus.CANCELED
        ).update(payment_method_ref=payment_method_ref, card_exp_month=None, card_exp_year=None)
        _history(sub, "card_updated", payment_method_ref[-4:])
        notice_queue(sub=sub, key=f"card:{payment_method_ref}", kind="card_updated")
        failed = list(
            SubscriptionPeriod.objects.filter(
                subscription__customer_ref=sub.customer_ref, status=PeriodStatus.FAILED
            ).values_list("pk", flat=True)
        )
        if sub.status == SubscriptionStatus.UNPAID:
            # The buyer came back: dunning ended, so bill the period that was given up.
            last = sub.periods.filter(status=PeriodStatus.ABANDONED).order_by("-number").first()
            if last is not None:
                SubscriptionPeriod.objects.filter(pk=last.pk).update(status=PeriodStatus.FAILED)
                Subscription.objects.filter(pk=sub.pk).update(status=SubscriptionStatus.PAST_DUE)
                failed.append(last.pk)
    made = None
    for period_id in failed:
        made = retry_charge(period_id=period_id, now=now, immediate=True) or made
    return made


def subscription_refund_last(*, subscription_id: int, actor, requested_by: str):
    """The creator refunds the latest paid renewal in full (tax included, as charged); the
    ledger's refund ends the subscription and its access (on_ledger_entry). A period paid by
    the checkout is refunded from the order instead. Raises SubscriptionRefused."""
    from audit.services import audit_record

    sub = Subscription.objects.get(pk=subscription_id)
    period = (
        sub.periods.filter(status=PeriodStatus.PAID, paid_by_order=False)
        .order_by("-number")
        .first()
    )
    if period is None:
        raise SubscriptionRefused(
            "No renewal of this subscription has been paid; refund its order instead."
        )
    try:
        refund = payments.refund_create(
            reference=sub.reference,
            line_key=orderkeys.subscription_line_key(sub.pk, period.number),
            amount=None,
            reason="last payment refunded by the creator",
            requested_by=requested_by,
            idempotency_key=f"subrefund_{sub.pk}_{period.number}",
        )
    except payments.RefundRefused as exc:
        raise SubscriptionRefused(str(exc)) from exc
    with transaction.atomic():
        audit_record(
            request_or_actor=actor,
            action="subscriptions.refund_last",
            obj=sub,
            changes={"period": period.number, "amount": [None, refund.amount]},
            summary=f"Refunded period {period.number} of subscription {sub.pk}",
        )
    return refund
