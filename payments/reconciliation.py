"""Making our records agree with the gateway: re-read payments, refunds and disputes, record
what they say, and flag what does not add up (Mismatch) for the creator.

Webhooks and the periodic reconciliation both end here: an event is only a hint to re-read
an object. Every write is idempotent (unique ledger rows, conditional status moves), so a
replay, a twin event or two runs at once change nothing twice. Gateway calls are made
outside transactions and without row locks; the recording that follows takes its own.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from core.loops import each_record, quarantined_pks
from payments.gateway import (
    GatewayAuthFailed,
    GatewayUnavailable,
    PaymentResult,
    PaymentStatus,
    RefundResult,
    get_gateway,
)
from payments.models import (
    AttemptStatus,
    ChargeAttempt,
    GatewayCustomer,
    LedgerEntry,
    LedgerKind,
    Mismatch,
    Refund,
    RefundStatus,
    WebhookEvent,
)
from payments.services import (
    _ledger_add,
    attempt_execute,
    attempt_record_result,
    mismatch_record,
    refund_execute,
    refund_record,
)

logger = logging.getLogger(__name__)

# Stripe keeps idempotency keys for at least 24 h: past that a re-send could charge twice.
RESEND_WINDOW = dt.timedelta(hours=23)
_TAKEN = (PaymentStatus.SUCCEEDED, PaymentStatus.PROCESSING)
# Why reconciliation closed an attempt (its decline_code): the buyer-facing pages, the
# follow-up flag and the failure analytics read it like any other decline.
CLOSED_NO_PAYMENT = "no_payment_in_idempotency_window"
CLOSED_NOT_AUTHENTICATED = "authentication_required"
# The periodic run's loops over records (core/loops.py): each moves past a record that fails.
LOOP_ATTEMPTS = "payments.reconcile_attempts"
LOOP_REFUNDS = "payments.reconcile_refunds"
LOOP_PAYMENTS = "payments.reconcile_payments"
LOOP_WEBHOOKS = "payments.webhook_backlog"
# The gateway is down or refuses our key: not any one record's fault.
_STOP = (GatewayUnavailable, GatewayAuthFailed)


def action_max_age() -> dt.timedelta:
    """How long a payment may wait for the buyer's authentication before it is closed
    (PAYMENTS_ACTION_MAX_AGE_HOURS, default 24)."""
    return dt.timedelta(hours=float(getattr(settings, "PAYMENTS_ACTION_MAX_AGE_HOURS", 24)))


def allocate(amount: int, weights: Mapping[str, int]) -> dict[str, int]:
    """Split `amount` over keys in proportion to `weights` (largest remainder; sums exactly)."""
    total = sum(weights.values())
    if total <= 0 or amount <= 0:
        return {}
    shares = {k: amount * w // total for k, w in weights.items()}
    remainders = sorted(weights, key=lambda k: (-(amount * weights[k] % total), k))
    for key in remainders[: amount - sum(shares.values())]:
        shares[key] += 1
    return {k: v for k, v in shares.items() if v > 0}


def payment_is_ours(result: PaymentResult) -> bool:
    """Ours if our metadata names this tenant; with no tenant in it, if the customer is ours."""
    tenant = result.metadata.get("tenant")
    if tenant:
        return tenant == connection.schema_name
    return (
        bool(result.customer_ref)
        and GatewayCustomer.objects.filter(gateway_ref=result.customer_ref).exists()
    )


# --- payments --------------------------------------------------------------------------------


def payment_result_apply(*, result: PaymentResult) -> ChargeAttempt | None:
    """Record what the gateway says about one payment on its attempt, or flag an orphan."""
    if not result.payment_ref:
        return None
    attempt = ChargeAttempt.objects.filter(gateway_ref=result.payment_ref).first()
    key = result.metadata.get("attempt")
    if attempt is None and key:
        attempt = ChargeAttempt.objects.filter(idempotency_key=key).first()
    if attempt is None:
        if result.status in _TAKEN and payment_is_ours(result):
            mismatch_record(
                kind=Mismatch.Kind.ORPHAN_CHARGE,
                gateway_ref=result.payment_ref,
                reference=result.metadata.get("reference", "")[:80],
                detail=f"the gateway has payment {result.payment_ref} ({result.status}, "
                f"{result.amount}) and we have no charge attempt for it",
            )
        return None
    if (
        result.status in _TAKEN
        and attempt.status in (AttemptStatus.DECLINED, AttemptStatus.CANCELED)
        and not attempt.gateway_ref
    ):
        # Money taken for an attempt we closed without a payment (never sent, or closed after
        # the idempotency window): no status move can record it, so a person must look.
        mismatch_record(
            kind=Mismatch.Kind.ORPHAN_CHARGE,
            gateway_ref=result.payment_ref,
            reference=attempt.reference,
            detail=f"the gateway has payment {result.payment_ref} ({result.status}, "
            f"{result.amount}) for attempt {attempt.purpose}, which we closed as "
            f"{attempt.status} ({attempt.decline_code or attempt.message or 'no reason'})",
        )
        return attempt
    if (
        result.status in _TAKEN
        and result.amount is not None
        and result.amount.amount != attempt.amount
    ):
        mismatch_record(
            kind=Mismatch.Kind.AMOUNT,
            gateway_ref=result.payment_ref,
            reference=attempt.reference,
            detail=f"attempt {attempt.purpose} is for {attempt.money}; "
            f"the gateway's payment is for {result.amount}",
        )
    return attempt_record_result(attempt_id=attempt.pk, result=result)


def payment_sync(*, payment_ref: str, with_refunds: bool = True) -> ChargeAttempt | None:
    """Re-read one payment from the gateway and record it (and its refunds, if it has any)."""
    result = get_gateway().payment_retrieve(payment_ref)
    attempt = payment_result_apply(result=result)
    if with_refunds and attempt is not None and result.amount_refunded:
        charges = _payment_lines(payment_ref, lock=False)
        if charges and _ledger_refunded(charges) != result.amount_refunded:
            payment_refunds_sync(payment_ref=payment_ref)
    return attempt


def attempt_reconcile(
    *,
    attempt_id: int,
    resend_after: dt.timedelta,
    now: dt.datetime | None = None,
    action_expiry: dt.timedelta | None = None,
) -> ChargeAttempt:
    """Re-read an open attempt's payment(s). An IN_FLIGHT attempt the gateway has no payment
    for, sent longer than `resend_after` ago, is sent again with the *same* key; past the
    idempotency window it is closed instead (a re-send could charge twice). An attempt still
    waiting for authentication after `action_expiry` is closed too."""
    now = now or timezone.now()
    action_expiry = action_max_age() if action_expiry is None else action_expiry
    attempt = ChargeAttempt.objects.get(pk=attempt_id)
    gateway = get_gateway()
    if attempt.gateway_ref:
        results = [gateway.payment_retrieve(attempt.gateway_ref)]
    else:
        results = gateway.payments_find(
            metadata_key="attempt", metadata_value=attempt.idempotency_key
        )
    # A settled one first: any other succeeded payment is then flagged as a duplicate.
    results.sort(
        key=lambda r: (r.status != PaymentStatus.SUCCEEDED, r.created, r.payment_ref or "")
    )
    for result in results:
        payment_result_apply(result=result)
    attempt.refresh_from_db()
    sent_at = attempt.sent_at or attempt.created_at
    if (
        not results
        and attempt.status == AttemptStatus.IN_FLIGHT
        and now - resend_after >= sent_at >= now - RESEND_WINDOW
    ):
        logger.info("reconciliation re-sends attempt %s (no payment at the gateway)", attempt.pk)
        attempt = attempt_execute(attempt_id=attempt.pk, allow_resend=True)
    elif (
        not results and attempt.status == AttemptStatus.IN_FLIGHT and sent_at < now - RESEND_WINDOW
    ):
        attempt = _attempt_close(
            attempt,
            code=CLOSED_NO_PAYMENT,
            message="closed by reconciliation: the gateway has no payment for it and its "
            "idempotency window has passed, so it is never sent again",
        )
    elif attempt.status == AttemptStatus.REQUIRES_ACTION and sent_at <= now - action_expiry:
        attempt = _attempt_close(
            attempt,
            code=CLOSED_NOT_AUTHENTICATED,
            message="closed by reconciliation: the buyer did not complete authentication "
            f"within {action_expiry}",
        )
    return attempt


def _attempt_close(attempt: ChargeAttempt, *, code: str, message: str) -> ChargeAttempt:
    """Record an open attempt as declined with `code`: the same path as a gateway decline,
    so the order, the offer's follow-up flag and the events follow as for any decline. If
    the payment succeeds after all (the buyer authenticates late), its re-read is recorded
    as a late success on the same payment (services.attempt_record_result)."""
    logger.info("reconciliation closes attempt %s: %s", attempt.pk, code)
    return attempt_record_result(
        attempt_id=attempt.pk,
        result=PaymentResult(
            status=PaymentStatus.DECLINED,
            payment_ref=attempt.gateway_ref or None,
            decline_code=code,
            message=message,
        ),
    )


# --- refunds ---------------------------------------------------------------------------------


def _payment_lines(payment_ref: str, *, lock: bool) -> list[LedgerEntry]:
    rows = LedgerEntry.objects.filter(gateway_ref=payment_ref, kind=LedgerKind.CHARGE)
    rows = rows.order_by("pk")
    return list(rows.select_for_update() if lock else rows)


def _ledger_refunded(charges: list[LedgerEntry]) -> int:
    if not charges:
        return 0
    return (
        LedgerEntry.objects.filter(
            kind=LedgerKind.REFUND,
            reference=charges[0].reference,
            line_key__in=[c.line_key for c in charges],
        ).aggregate(total=Sum("amount"))["total"]
        or 0
    )


def _external_refund_record(*, payment_ref: str, refund: RefundResult) -> None:
    """A refund made at the gateway, not through us (e.g. the dashboard): spread it over the
    payment's lines in proportion to what is left on each, and record it in the ledger."""
    with transaction.atomic():
        charges = _payment_lines(payment_ref, lock=True)
        if not charges or Refund.objects.filter(gateway_ref=refund.refund_ref).exists():
            return  # not a payment we recorded (totals check flags it), or already recorded
        reference = charges[0].reference
        left: dict[str, int] = {}
        for charge in charges:
            used = (
                Refund.objects.filter(reference=reference, line_key=charge.line_key)
                .exclude(status=RefundStatus.FAILED)
                .aggregate(total=Sum("amount"))["total"]
                or 0
            )
            left[charge.line_key] = max(charge.amount - used, 0)
        amount = min(refund.amount.amount, sum(left.values()))
        for line_key, part in allocate(amount, left).items():
            Refund.objects.create(
                idempotency_key=f"{refund.refund_ref}:{line_key}"[:80],
                reference=reference,
                line_key=line_key,
                payment_ref=payment_ref,
                amount=part,
                currency=charges[0].currency,
                reason="refunded at the gateway",
                status=RefundStatus.SUCCEEDED,
                gateway_ref=refund.refund_ref,
                requested_by="gateway",
                finished_at=timezone.now(),
            )
            _ledger_add(
                kind=LedgerKind.REFUND,
                gateway_ref=refund.refund_ref,
                reference=reference,
                line_key=line_key,
                amount=part,
                currency=charges[0].currency,
            )


def payment_refunds_sync(*, payment_ref: str) -> None:
    """Re-read a payment's refunds and bring them into the ledger; flag differing totals."""
    if not _payment_lines(payment_ref, lock=False):
        # The refund overtook the payment's own outcome: record the charge first, or the
        # refund would have no lines to land on.
        payment_sync(payment_ref=payment_ref, with_refunds=False)
    gateway_refunds = get_gateway(paid_by=payment_ref).refunds_list(payment_ref=payment_ref)
    for refund in gateway_refunds:
        key = refund.metadata.get("refund", "")
        row = Refund.objects.filter(gateway_ref=refund.refund_ref).first()
        if row is None and key:
            row = Refund.objects.filter(idempotency_key=key, payment_ref=payment_ref).first()
        if row is not None:
            if row.status in (RefundStatus.CREATED, RefundStatus.IN_FLIGHT):
                refund_record(
                    refund_id=row.pk,
                    gateway_ref=refund.refund_ref,
                    succeeded=refund.status != "failed",
                )
        elif refund.status != "failed":
            _external_refund_record(payment_ref=payment_ref, refund=refund)
    charges = _payment_lines(payment_ref, lock=False)
    theirs = sum(r.amount.amount for r in gateway_refunds if r.status != "failed")
    ours = _ledger_refunded(charges)
    if charges and ours != theirs:
        mismatch_record(
            kind=Mismatch.Kind.REFUND_TOTAL,
            gateway_ref=payment_ref,
            reference=charges[0].reference,
            detail=f"the gateway has refunded {theirs} of {payment_ref}; our ledger has {ours}",
        )


def refund_reconcile(*, refund_id: int) -> Refund:
    """A refund left CREATED (crash before the call) or IN_FLIGHT (unknown outcome)."""
    refund = Refund.objects.get(pk=refund_id)
    if refund.status == RefundStatus.CREATED:
        return refund_execute(refund_id=refund.pk)
    if refund.status == RefundStatus.IN_FLIGHT:
        payment_refunds_sync(payment_ref=refund.payment_ref)
        refund.refresh_from_db()
        if refund.status == RefundStatus.IN_FLIGHT:  # the gateway never got it: same key again
            return refund_execute(refund_id=refund.pk, allow_resend=True)
    return refund


# --- the periodic run ------------------------------------------------------------------------


@dataclass
class ReconcileReport:
    skipped: bool = False  # another run holds this tenant's lock
    gateway_down: bool = False
    attempts: int = 0
    refunds: int = 0
    payments: int = 0
    events: int = 0
    disputes: int = 0
    errors: list[str] = field(default_factory=list)


@contextmanager
def _tenant_lock() -> Iterator[bool]:
    """A session advisory lock per tenant: one run at a time, without holding a transaction
    open across gateway calls (an xact lock would need one)."""
    name = f"payments.reconcile:{connection.schema_name}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [name])
        got = cursor.fetchone()[0]
    try:
        yield got
    finally:
        if got:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [name])


def reconcile_run(
    *,
    in_flight_grace: dt.timedelta = dt.timedelta(minutes=2),
    action_grace: dt.timedelta = dt.timedelta(minutes=30),
    resend_after: dt.timedelta = dt.timedelta(minutes=5),
    lookback: dt.timedelta = dt.timedelta(days=3),
    action_expiry: dt.timedelta | None = None,
    now: dt.datetime | None = None,
) -> ReconcileReport:
    """One reconciliation pass for the current tenant. Safe to run twice and concurrently.

    `action_expiry` (default: PAYMENTS_ACTION_MAX_AGE_HOURS) closes attempts left waiting
    for authentication that long."""
    now = now or timezone.now()
    action_expiry = action_max_age() if action_expiry is None else action_expiry
    report = ReconcileReport()
    with _tenant_lock() as got:
        if not got:
            report.skipped = True
            return report
        try:
            _reconcile_attempts(
                report, now, in_flight_grace, action_grace, resend_after, action_expiry
            )
            _reconcile_refunds(report, now, in_flight_grace)
            _reconcile_recent_payments(report, now, lookback)
            _reconcile_webhook_backlog(report, now, in_flight_grace)
            from payments.disputes import disputes_reconcile  # it builds on this module

            disputes_reconcile(report=report)
        except GatewayUnavailable as exc:
            # Nothing is lost: every open row stays as it is for the next run.
            logger.warning("reconciliation stopped, gateway unavailable: %s", exc)
            report.gateway_down = True
        except GatewayAuthFailed as exc:  # a configuration error: alert, keep every row
            logger.error("reconciliation stopped, the gateway refused our key: %s", exc)
            report.gateway_down = True
    return report


def _reconcile_attempts(
    report, now, in_flight_grace, action_grace, resend_after, action_expiry
) -> None:
    due = Q(
        status__in=[AttemptStatus.IN_FLIGHT, AttemptStatus.PROCESSING],
        sent_at__lte=now - in_flight_grace,
    ) | Q(status=AttemptStatus.REQUIRES_ACTION, sent_at__lte=now - action_grace)
    ids = (
        ChargeAttempt.objects.filter(due)
        .exclude(pk__in=quarantined_pks(LOOP_ATTEMPTS))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    # One bad object must not stop the run: each_record records it and moves on; a gateway
    # outage (GatewayUnavailable) ends the run and counts against no record.
    run = each_record(
        LOOP_ATTEMPTS,
        list(ids),
        lambda attempt_id: attempt_reconcile(
            attempt_id=attempt_id, resend_after=resend_after, now=now, action_expiry=action_expiry
        ),
        label=lambda attempt_id: f"charge attempt {attempt_id}",
        stop_on=_STOP,
    )
    report.attempts += len(run.results) + len(run.failed)
    report.errors += [f"attempt {e}" for e in run.failed]


def _reconcile_refunds(report, now, grace) -> None:
    ids = (
        Refund.objects.filter(
            status__in=[RefundStatus.CREATED, RefundStatus.IN_FLIGHT], created_at__lte=now - grace
        )
        .exclude(pk__in=quarantined_pks(LOOP_REFUNDS))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    run = each_record(
        LOOP_REFUNDS,
        list(ids),
        lambda refund_id: refund_reconcile(refund_id=refund_id),
        label=lambda refund_id: f"refund {refund_id}",
        stop_on=_STOP,
    )
    report.refunds += len(run.results) + len(run.failed)
    report.errors += [f"refund {e}" for e in run.failed]


def _reconcile_recent_payments(report, now, lookback) -> None:
    recent = get_gateway().payments_recent(created_after=int((now - lookback).timestamp()))
    # Oldest first, so of two payments for one attempt the first recorded stays the charge.
    recent.sort(key=lambda r: (r.created, r.payment_ref or ""))
    ours = [r for r in recent if payment_is_ours(r)]

    def apply(result: PaymentResult) -> None:
        payment_result_apply(result=result)
        charges = _payment_lines(result.payment_ref or "", lock=False)
        if charges and result.amount_refunded != _ledger_refunded(charges):
            payment_refunds_sync(payment_ref=result.payment_ref or "")

    run = each_record(
        LOOP_PAYMENTS,
        ours,
        apply,
        key=lambda r: r.payment_ref or "",
        label=lambda r: f"gateway payment {r.payment_ref}",
        stop_on=_STOP,
    )
    report.payments += len(ours)
    report.errors += [f"payment {e}" for e in run.failed]


def _reconcile_webhook_backlog(report, now, grace) -> None:
    """Unprocessed events, oldest first. One that cannot be processed (an id the gateway does
    not know, a malformed row) is recorded and skipped, and quarantined after
    LOOP_QUARANTINE_AFTER runs, so it never again holds up the events queued after it."""
    from payments.webhooks import webhook_event_process

    rows = list(
        WebhookEvent.objects.filter(processed_at__isnull=True, received_at__lte=now - grace)
        .exclude(pk__in=quarantined_pks(LOOP_WEBHOOKS))
        .order_by("pk")
        .values_list("pk", "event_type", "event_id")[:500]
    )
    run = each_record(
        LOOP_WEBHOOKS,
        rows,
        lambda row: webhook_event_process(webhook_event_id=row[0]),
        key=lambda row: row[0],
        label=lambda row: f"gateway event {row[1]} {row[2]}",
        stop_on=_STOP,
    )
    report.events += len(run.results) + len(run.failed)
    report.errors += [f"webhook event {e}" for e in run.failed]
