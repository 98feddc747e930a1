"""Starting subscriptions, billing their periods exactly once, dunning, and the buyer's and the
creator's changes.

Every renewal and every dunning retry is a payments ChargeAttempt with the purpose
"sub:<id>:<period>:<try>" (core/orderkeys.py), committed before the off-session charge on the
vaulted card; `payments.attempt_execute` claims it CREATED → IN_FLIGHT once, so concurrent
beats, a retried task or a restarted worker charge once. The outcome comes back through
`on_attempt_outcome`, inside payments' recording transaction, and moves the subscription.
Periods are computed from the stored anchor (subscriptions/periods.py) and stored when billed.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from core import orderkeys
from core.loops import each_record, quarantined_pks
from core.money import Money
from payments import services as payments
from payments.gateway import GatewayAuthFailed, GatewayUnavailable
from payments.models import AttemptStatus, ChargeAttempt
from subscriptions.models import (
    BILLED_STATUSES,
    SUBSCRIPTION_TRANSITIONS,
    DunningSettings,
    FinalAction,
    PeriodStatus,
    Plan,
    PlanKind,
    Subscription,
    SubscriptionEvent,
    SubscriptionPeriod,
    SubscriptionStatus,
)
from subscriptions.notices import notices_send_overdue
from subscriptions.services.notify import (
    LOOP_EXPIRY,
    expiry_reminders_queue,
    notice_queue,
    renewed_queue,
)

logger = logging.getLogger(__name__)

LOOP_RENEW = "subscriptions.renew"
LOOP_RETRY = "subscriptions.retry"
LOOP_RESUME = "subscriptions.resume"
_STOP = (GatewayUnavailable, GatewayAuthFailed)


class SubscriptionRefused(ValueError):
    """A change the subscription's state does not allow; `message` is for the person asking."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.message = message
        self.status = status


# --- price types --------------------------------------------------------------------------


_PLAN_CACHE_SECONDS = 300


def plan_cache_key(product_id: int) -> str:
    return f"subscriptions:plan:{int(product_id)}"  # the cache's key function adds the schema


def plan_for(product_id: int) -> Plan | None:
    """The product's plan, or None (one-time). Cached (Plan.save/delete clear it): every
    checkout, offer and follow-up page prices its lines through it, within their query
    budgets (tests/browser/test_page_speed.py)."""
    from django.core.cache import cache

    key = plan_cache_key(product_id)
    try:
        cached = cache.get(key)
    except Exception:  # the cache is an optimisation: its outage must not fail a payment
        logger.warning("plan cache unavailable; reading product %s's plan", product_id)
        return Plan.objects.filter(product_id=product_id).first()
    if cached is not None:
        return cached or None
    plan = Plan.objects.filter(product_id=product_id).first()
    try:
        cache.set(key, plan or False, _PLAN_CACHE_SECONDS)
    except Exception:
        logger.warning("plan cache unavailable; product %s's plan not cached", product_id)
    return plan


@dataclass(frozen=True)
class PlanPrice:
    """What a buyer pays for a plan: the first payment (today) and the total the plan commits
    them to (None: open-ended). The pricing guardrails judge both (docs/subscriptions.md)."""

    first: int
    recurring: int
    total: int | None


def plan_price(plan: Plan | None, price: int) -> PlanPrice:
    """`price` is the per-period price (the product's or the offer's), minor units."""
    if plan is None:
        return PlanPrice(first=price, recurring=0, total=price)
    first = plan.setup_fee_amount + (0 if plan.trial_days else price)
    if plan.kind == PlanKind.INSTALMENTS:
        return PlanPrice(
            first=first, recurring=price, total=plan.setup_fee_amount + price * plan.instalments
        )
    return PlanPrice(first=first, recurring=price, total=None)


# --- status ------------------------------------------------------------------------------


def _history(sub: Subscription, what: str, detail: str = "") -> None:
    SubscriptionEvent.objects.create(subscription=sub, what=what, detail=detail[:300])


def subscription_status_move(*, sub: Subscription, to: str, **extra) -> bool:
    """One conditional UPDATE along SUBSCRIPTION_TRANSITIONS; False if not allowed from here."""
    allowed_from = [s for s, targets in SUBSCRIPTION_TRANSITIONS.items() if to in targets]
    updated = Subscription.objects.filter(pk=sub.pk, status__in=allowed_from).update(
        status=to, **extra
    )
    if updated:
        previous = sub.status
        sub.status = to
        for key, value in extra.items():
            setattr(sub, key, value)
        _history(sub, f"status:{to}", f"from {previous}")
        if to == SubscriptionStatus.PAST_DUE:
            _publish(sub, "subscription.past_due")
        elif to == SubscriptionStatus.CANCELED:
            _publish(sub, "subscription.canceled")
    return bool(updated)


def _publish(sub: Subscription, event_type: str, key: str = "") -> None:
    """An outbound partner webhook, queued with the change (partners' outbox)."""
    from subscriptions import public

    public.publish(sub=sub, event_type=event_type, key=key)


# --- starting ----------------------------------------------------------------------------


def subscription_start(
    *,
    plan: Plan,
    customer_id: int,
    order_id: int | None,
    line_key: str,
    amount: Money,
    tax_amount: int,
    started_at: dt.datetime,
    customer_ref: str,
    payment_method_ref: str,
    first_paid: bool,
    replaces: Subscription | None = None,
) -> Subscription:
    """Create the subscription (inside the caller's transaction).

    `amount` is each period's charge, tax included. With a trial the trial ends at the anchor
    and period 0 is billed there by the renewal job; without one, period 0 starts now and was
    paid by the order (`first_paid`), so the next charge is at period 1's start.
    """
    started_at = started_at.astimezone(dt.UTC)
    trial = dt.timedelta(days=plan.trial_days) if plan.trial_days else None
    anchor = started_at + trial if trial else started_at
    sub = Subscription.objects.create(
        customer_id=customer_id,
        product_id=plan.product_id,
        order_id=order_id,
        line_key=line_key,
        kind=plan.kind,
        interval_unit=plan.interval_unit,
        interval_count=plan.interval_count,
        instalments=plan.instalments,
        amount=amount.amount,
        tax_amount=tax_amount,
        currency=amount.currency,
        anchor=anchor,
        trial_ends_at=anchor if trial else None,
        status=SubscriptionStatus.TRIALING if trial else SubscriptionStatus.ACTIVE,
        customer_ref=customer_ref,
        payment_method_ref=payment_method_ref,
        replaces=replaces,
    )
    if trial or not first_paid:
        # Period 0 is billed at the anchor by the renewal job, like any other period.
        sub.next_period, sub.next_charge_at, sub.paid_through = 0, anchor, anchor
    else:
        start, end = sub.period_bounds(0)
        SubscriptionPeriod.objects.create(
            subscription=sub,
            number=0,
            starts_at=start,
            ends_at=end,
            amount=amount.amount,
            status=PeriodStatus.PAID,
            paid_by_order=True,
            paid_at=started_at,
        )
        sub.next_period, sub.next_charge_at, sub.paid_through = 1, end, end
        if plan.kind == PlanKind.INSTALMENTS and plan.instalments <= 1:
            sub.next_charge_at = None
    sub.save(update_fields=["next_period", "next_charge_at", "paid_through"])
    _history(sub, "started", "trial until " + anchor.isoformat() if trial else "")
    _publish(sub, "subscription.created")
    return sub


# --- billing a period ----------------------------------------------------------------------


def _attempt_for(
    sub: Subscription, period: SubscriptionPeriod, *, new_period: bool = False
) -> ChargeAttempt:
    """The attempt for the period's current try; the caller holds the subscription's lock.

    Looked up before inserting: payments records an outcome holding the attempt's row and
    then takes the subscription's lock (on_attempt_outcome), and an INSERT whose unique check
    meets that row's uncommitted new version would wait for it while we hold the
    subscription: a deadlock. Attempts are only created under the subscription's lock, so
    when the lookup finds none, nobody else is inserting it. A period this transaction has
    just made (`new_period`) has no attempt yet: no lookup.
    """
    purpose = orderkeys.subscription_purpose(sub.pk, period.number, period.tries)
    existing = None if new_period else ChargeAttempt.objects.filter(purpose=purpose).first()
    if existing is not None:
        return existing
    attempt, _ = payments.attempt_get_or_create(
        purpose=purpose,
        reference=orderkeys.subscription_reference(sub.pk),
        amount=Money(period.amount, sub.currency),
        customer_ref=sub.customer_ref,
        payment_method_ref=sub.payment_method_ref,
        off_session=True,
        allocation={orderkeys.subscription_line_key(sub.pk, period.number): period.amount},
    )
    return attempt


def _end_without_charge(sub: Subscription, now: dt.datetime) -> None:
    """At a due date the subscription will not be billed again: asked to stop, or done."""
    if sub.cancel_at_period_end:
        subscription_status_move(
            sub=sub,
            to=SubscriptionStatus.CANCELED,
            ended_at=sub.next_charge_at,
            end_reason="canceled_at_period_end",
            next_charge_at=None,
        )
    else:
        subscription_status_move(
            sub=sub, to=SubscriptionStatus.COMPLETED, ended_at=now, next_charge_at=None
        )


def renewal_charge(*, subscription_id: int, now: dt.datetime | None = None) -> int | None:
    """Bill the subscription's next period if it is due at `now`: commit the period and its
    attempt, then charge outside the transaction. Returns the attempt id, or None when nothing
    was due. Safe to run any number of times at once: one attempt per (period, try), sent once.
    """
    now = now or timezone.now()
    with transaction.atomic():
        sub = (
            Subscription.objects.select_for_update()
            .filter(pk=subscription_id, status__in=BILLED_STATUSES, next_charge_at__lte=now)
            .first()
        )
        if sub is None:
            return None
        n = sub.next_period
        done = sub.kind == PlanKind.INSTALMENTS and n >= (sub.instalments or 0)
        if sub.cancel_at_period_end or done:
            _end_without_charge(sub, now)
            return None
        start, end = sub.period_bounds(n)
        # Periods are only made under the subscription's lock (here, and at its start), so a
        # lookup then a plain INSERT (no savepoint) cannot race another maker.
        period = SubscriptionPeriod.objects.filter(subscription=sub, number=n).first()
        created = period is None
        if created:
            period = SubscriptionPeriod.objects.create(
                subscription=sub, number=n, starts_at=start, ends_at=end, amount=sub.amount
            )
        if period.status != PeriodStatus.DUE:
            return None  # failed (dunning retries it) or waiting for the buyer
        attempt = _attempt_for(sub, period, new_period=created)
        if created:
            _history(sub, "renewal", f"period {n} ({start:%Y-%m-%d}) charged {period.amount}")
    if attempt.status == AttemptStatus.CREATED:
        payments.attempt_execute(attempt_id=attempt.pk)
    return attempt.pk


def retry_charge(
    *, period_id: int, now: dt.datetime | None = None, immediate: bool = False
) -> int | None:
    """The next dunning try of a failed period: claimed on the period row (FAILED → DUE, tries
    + 1) so only one try is ever open, then charged like a renewal. `immediate`: the buyer has
    just given a new card, so the schedule is not waited for."""
    now = now or timezone.now()
    with transaction.atomic():
        # The subscription first, then the period: the order payments' outcome handler takes.
        sub_id = (
            SubscriptionPeriod.objects.filter(pk=period_id)
            .values_list("subscription_id", flat=True)
            .first()
        )
        sub = Subscription.objects.select_for_update().filter(pk=sub_id).first()
        period = (
            SubscriptionPeriod.objects.select_for_update()
            .filter(pk=period_id, status=PeriodStatus.FAILED)
            .first()
        )
        if sub is None or period is None:
            return None
        if not immediate and (period.next_retry_at or now) > now:
            return None
        if sub.status != SubscriptionStatus.PAST_DUE:
            return None
        period.tries += 1
        period.status = PeriodStatus.DUE
        period.next_retry_at = None
        period.save(update_fields=["tries", "status", "next_retry_at"])
        attempt = _attempt_for(sub, period)
        _history(sub, "retry", f"period {period.number}, try {period.tries}")
    payments.attempt_execute(attempt_id=attempt.pk)
    return attempt.pk


def _resume_open(now: dt.datetime) -> None:
    """Attempts committed but never sent (a worker killed between the commit and the call):
    send them now. One sent but unrecorded (IN_FLIGHT) is reconciliation's (payments.reconcile
    re-reads it by its key's metadata and re-sends with the same key only if the gateway has
    no payment for it)."""
    purposes = [
        orderkeys.subscription_purpose(sub_id, number, tries)
        for sub_id, number, tries in SubscriptionPeriod.objects.filter(
            status=PeriodStatus.DUE, created_at__lte=now
        ).values_list("subscription_id", "number", "tries")
    ]
    ids = ChargeAttempt.objects.filter(
        purpose__in=purposes, status=AttemptStatus.CREATED
    ).values_list("pk", flat=True)
    each_record(
        LOOP_RESUME,
        list(ids),
        lambda attempt_id: payments.attempt_execute(attempt_id=attempt_id),
        label=lambda attempt_id: f"renewal charge attempt {attempt_id}",
        stop_on=_STOP,
    )


@dataclass
class RenewalRun:
    renewed: int = 0
    retried: int = 0
    failed: int = 0
    notices_late: int = 0  # notices whose task was lost, sent by this run


def _each_due(loop: str, rows, order: str, charge, what: str) -> tuple[int, int]:
    """Run `charge` on each due row (oldest first, quarantined ones left out) through
    core.loops.each_record; returns (charged, failed)."""
    due = rows.exclude(pk__in=quarantined_pks(loop)).order_by(order, "pk")
    result = each_record(
        loop,
        list(due.values_list("pk", flat=True)),
        charge,
        label=lambda pk: f"{what} {pk}",
        stop_on=_STOP,
    )
    return sum(1 for r in result.results if r), len(result.failed)


def renewals_run(*, now: dt.datetime | None = None) -> RenewalRun:
    """The beat job for one store: unsent attempts, due renewals, due dunning retries, card
    expiry reminders, notices whose task was lost. Each record goes through
    core.loops.each_record."""
    now = now or timezone.now()
    run = RenewalRun()
    _resume_open(now)
    run.renewed, failed = _each_due(
        LOOP_RENEW,
        Subscription.objects.filter(status__in=BILLED_STATUSES, next_charge_at__lte=now),
        "next_charge_at",
        lambda pk: renewal_charge(subscription_id=pk, now=now),
        "renewal of subscription",
    )
    run.retried, failed_retries = _each_due(
        LOOP_RETRY,
        SubscriptionPeriod.objects.filter(status=PeriodStatus.FAILED, next_retry_at__lte=now),
        "next_retry_at",
        lambda pk: retry_charge(period_id=pk, now=now),
        "dunning retry of subscription period",
    )
    run.failed += failed + failed_retries
    _card_expiry_learn()
    expiry_reminders_queue(now=now)
    run.notices_late = notices_send_overdue()
    return run


def _card_expiry_learn() -> None:
    """Read the expiry of cards we have not read yet (new subscriptions, updated cards), once
    each, outside any transaction; 0/0 marks a method that has none (not a card)."""
    refs = (
        Subscription.objects.filter(
            status__in=BILLED_STATUSES + (SubscriptionStatus.PAST_DUE,),
            card_exp_year__isnull=True,
        )
        .exclude(payment_method_ref="")
        .values_list("payment_method_ref", flat=True)
        .distinct()
    )

    def learn(ref: str) -> None:
        expiry = payments.card_expiry(payment_method_ref=ref) or (0, 0)
        Subscription.objects.filter(payment_method_ref=ref, card_exp_year__isnull=True).update(
            card_exp_month=expiry[0], card_exp_year=expiry[1]
        )

    each_record(LOOP_EXPIRY, list(refs)[:500], learn, stop_on=_STOP)


# --- outcomes (payments calls these inside its recording transaction) -----------------------


def on_attempt_outcome(attempt: ChargeAttempt) -> None:
    parsed = orderkeys.subscription_purpose_parse(attempt.purpose)
    if parsed is None:
        return
    sub_id, number, attempt_try = parsed
    sub = Subscription.objects.select_for_update().filter(pk=sub_id).first()
    period = (
        SubscriptionPeriod.objects.select_for_update()
        .filter(subscription_id=sub_id, number=number)
        .first()
    )
    if sub is None or period is None:
        logger.error("renewal attempt %s has no subscription period", attempt.purpose)
        return
    now = timezone.now()
    if attempt.status == AttemptStatus.SUCCEEDED:
        _period_paid(sub, period, attempt, now)
    elif attempt.status == AttemptStatus.DECLINED:
        if attempt_try != period.tries or period.status in (
            PeriodStatus.PAID,
            PeriodStatus.ABANDONED,
        ):
            return  # a stale outcome of an earlier try
        _period_failed(sub, period, attempt, now)
    elif attempt.status == AttemptStatus.REQUIRES_ACTION:
        if period.status != PeriodStatus.DUE or attempt_try != period.tries:
            return
        period.status = PeriodStatus.ACTION
        period.save(update_fields=["status"])
        subscription_status_move(sub=sub, to=SubscriptionStatus.PAST_DUE)
        notice_queue(sub=sub, key=f"action:{number}:{attempt_try}", kind="authenticate")


def _period_paid(
    sub: Subscription, period: SubscriptionPeriod, attempt: ChargeAttempt, now: dt.datetime
) -> None:
    if period.status == PeriodStatus.PAID:
        # Two tries of one period both succeeded (a buyer authenticating a closed try late):
        # the ledger has both; flag it for the creator to refund one.
        payments.mismatch_record(
            kind="duplicate_charge",
            gateway_ref=attempt.gateway_ref,
            reference=attempt.reference,
            detail=f"period {period.number} of subscription {sub.pk} was already paid",
        )
        return
    period.status, period.paid_at, period.next_retry_at = PeriodStatus.PAID, now, None
    period.save(update_fields=["status", "paid_at", "next_retry_at"])
    fields: dict = {"paid_through": max(sub.paid_through or period.ends_at, period.ends_at)}
    if period.number == sub.next_period:
        fields.update(next_period=period.number + 1, next_charge_at=period.ends_at)
    completed = sub.kind == PlanKind.INSTALMENTS and period.number + 1 >= (sub.instalments or 0)
    if completed:
        fields["next_charge_at"] = None
    Subscription.objects.filter(pk=sub.pk).update(**fields)
    for key, value in fields.items():
        setattr(sub, key, value)
    _history(sub, "paid", f"period {period.number}, try {period.tries}: {attempt.amount}")
    if completed:
        subscription_status_move(sub=sub, to=SubscriptionStatus.COMPLETED, ended_at=now)
    elif sub.status != SubscriptionStatus.ACTIVE:
        subscription_status_move(sub=sub, to=SubscriptionStatus.ACTIVE)
    renewed_queue(sub, period.number)


def _period_failed(
    sub: Subscription, period: SubscriptionPeriod, attempt: ChargeAttempt, now: dt.datetime
) -> None:
    schedule = DunningSettings.current().schedule
    retries_done = period.tries - 1
    period.failed_at = period.failed_at or now
    if retries_done >= len(schedule):
        period.status, period.next_retry_at = PeriodStatus.ABANDONED, None
        period.save(update_fields=["status", "next_retry_at", "failed_at"])
        _dunning_end(sub, now)
        return
    period.status = PeriodStatus.FAILED
    # Counted from the period's stored due date, never from "now": a run that is late, or a
    # test's clock, gives the same dates.
    period.next_retry_at = period.starts_at + dt.timedelta(days=schedule[retries_done])
    period.save(update_fields=["status", "next_retry_at", "failed_at"])
    _history(
        sub,
        "payment_failed",
        f"period {period.number}, try {period.tries}: {attempt.decline_code or 'declined'}; "
        f"next try {period.next_retry_at:%Y-%m-%d}",
    )
    subscription_status_move(sub=sub, to=SubscriptionStatus.PAST_DUE)
    notice_queue(sub=sub, key=f"retry:{period.number}:{period.tries}", kind="payment_failed")


def _dunning_end(sub: Subscription, now: dt.datetime) -> None:
    if DunningSettings.current().final_action == FinalAction.UNPAID:
        subscription_status_move(
            sub=sub, to=SubscriptionStatus.UNPAID, next_charge_at=None, end_reason="dunning"
        )
        notice_queue(sub=sub, key="unpaid", kind="unpaid")
    else:
        subscription_status_move(
            sub=sub,
            to=SubscriptionStatus.CANCELED,
            next_charge_at=None,
            ended_at=now,
            end_reason="dunning",
        )
        notice_queue(sub=sub, key="canceled", kind="canceled_unpaid")
