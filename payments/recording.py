"""Recording a gateway outcome on a charge attempt: the usual case in one statement, the rest
under the row's lock with every check (payments.services.attempt_record_result)."""

from __future__ import annotations

import logging

from django.utils import timezone

from core.returning import update_returning
from payments.gateway import PaymentResult, PaymentStatus
from payments.mismatches import mismatch_record
from payments.models import (
    ATTEMPT_TRANSITIONS,
    FINAL_ATTEMPT_STATUSES,
    AttemptStatus,
    ChargeAttempt,
    LedgerEntry,
    LedgerKind,
    Mismatch,
)

logger = logging.getLogger("payments.services")

ATTEMPT_STATUS_FOR = {
    PaymentStatus.SUCCEEDED: AttemptStatus.SUCCEEDED,
    PaymentStatus.PROCESSING: AttemptStatus.PROCESSING,
    PaymentStatus.REQUIRES_ACTION: AttemptStatus.REQUIRES_ACTION,
    PaymentStatus.DECLINED: AttemptStatus.DECLINED,
    PaymentStatus.CANCELED: AttemptStatus.DECLINED,
}


def record_from_in_flight(
    *, attempt_id: int, to: str, result: PaymentResult
) -> ChargeAttempt | None:
    """The usual outcome, the answer to our own send: the attempt is IN_FLIGHT (every status
    an outcome maps to is allowed from there) and has no other payment recorded. One
    conditional UPDATE … RETURNING moves it and takes the row's lock for the rest of the
    caller's transaction; None when the row is not in that state (then the caller reads it
    under the lock and checks everything: replays, stale outcomes, a second payment).

    A success writes the charge's ledger rows (one per allocated line) in the same statement
    (`charge_ledger_sql`): the rows `ledger_charge_write` would write, only if the UPDATE
    moved the attempt."""
    ref = result.payment_ref or ""
    then, then_params = charge_ledger_sql() if to == AttemptStatus.SUCCEEDED else ("", [])
    rows = update_returning(
        ChargeAttempt,
        assignments='"status" = %s, "gateway_ref" = COALESCE(NULLIF(%s, \'\'), "gateway_ref"), '
        '"client_secret" = COALESCE(NULLIF(%s, \'\'), "client_secret"), "decline_code" = %s, '
        '"message" = %s, "finished_at" = COALESCE(%s, "finished_at")',
        where='"id" = %s AND "status" = %s AND (%s = \'\' OR "gateway_ref" IN (\'\', %s))',
        params=[
            to,
            ref,
            result.client_secret or "",
            (result.decline_code or "")[:100],
            (result.message or "")[:300],
            timezone.now() if to in FINAL_ATTEMPT_STATUSES else None,
            attempt_id,
            AttemptStatus.IN_FLIGHT,
            ref,
            ref,
        ],
        then=then,
        then_params=then_params,
    )
    return rows[0] if rows else None


def charge_ledger_sql() -> tuple[str, list]:
    """The INSERT of `ledger_charge_write` over the attempt just moved to succeeded (read as
    "updated"): a CHARGE row per line of its allocation, in the allocation's order, a row that
    exists already (the same payment recorded twice) left alone."""
    table = LedgerEntry._meta.db_table
    sql = (
        f'INSERT INTO "{table}" ("kind", "gateway_ref", "reference", "line_key", "amount", '  # noqa: S608
        '"currency", "attempt_id", "created_at") SELECT %s, "updated"."gateway_ref", '
        '"updated"."reference", "line"."key", "line"."value"::numeric::integer, '
        '"updated"."currency", "updated"."id", %s FROM "updated" CROSS JOIN LATERAL '
        'jsonb_each_text("updated"."allocation") WITH ORDINALITY AS "line"("key", "value", "n") '
        'ORDER BY "line"."n" ON CONFLICT DO NOTHING'
    )
    return sql, [LedgerKind.CHARGE, timezone.now()]


def ledger_charge_write(attempt: ChargeAttempt) -> None:
    """The ledger rows of a succeeded attempt (recorded on the checked path), one per line of
    its allocation; a row that exists already is left alone."""
    LedgerEntry.objects.bulk_create(
        [
            LedgerEntry(
                kind=LedgerKind.CHARGE,
                gateway_ref=attempt.gateway_ref,
                reference=attempt.reference,
                line_key=line_key,
                amount=amount,
                currency=attempt.currency,
                attempt=attempt,
            )
            for line_key, amount in attempt.allocation.items()
        ],
        ignore_conflicts=True,
    )


def record_checked(
    attempt_id: int, new_status: str, result: PaymentResult
) -> tuple[ChargeAttempt, bool]:
    """Any other case, under the row's lock: (the attempt, whether the outcome changed it)."""
    attempt = ChargeAttempt.objects.select_for_update().get(pk=attempt_id)
    if result.payment_ref and attempt.gateway_ref and result.payment_ref != attempt.gateway_ref:
        logger.error("attempt %s got a second payment %s", attempt.pk, result.payment_ref)
        if result.status in (PaymentStatus.SUCCEEDED, PaymentStatus.PROCESSING):
            mismatch_record(
                kind=Mismatch.Kind.DUPLICATE_CHARGE,
                gateway_ref=result.payment_ref,
                reference=attempt.reference,
                detail=f"attempt {attempt.purpose} is recorded as {attempt.gateway_ref}; "
                f"the gateway also has {result.payment_ref} ({result.status}) for it",
            )
        return attempt, False
    late_success = (
        # The same payment re-read as succeeded after we saw it fail (e.g. the buyer
        # retried 3-D Secure on it): the money was taken, so it must reach the ledger.
        attempt.status == AttemptStatus.DECLINED
        and new_status == AttemptStatus.SUCCEEDED
        and bool(attempt.gateway_ref)
        and result.payment_ref == attempt.gateway_ref
    )
    if attempt.status == new_status or (
        new_status not in ATTEMPT_TRANSITIONS[attempt.status] and not late_success
    ):
        return attempt, False  # a replay, or a stale outcome arriving after a final one
    attempt.status = new_status
    attempt.gateway_ref = result.payment_ref or attempt.gateway_ref
    attempt.client_secret = result.client_secret or attempt.client_secret
    attempt.decline_code = (result.decline_code or "")[:100]
    attempt.message = (result.message or "")[:300]
    if new_status in FINAL_ATTEMPT_STATUSES:
        attempt.finished_at = timezone.now()
    attempt.save()
    return attempt, True
