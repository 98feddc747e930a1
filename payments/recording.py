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
    under the lock and checks everything: replays, stale outcomes, a second payment)."""
    ref = result.payment_ref or ""
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
    )
    return rows[0] if rows else None


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
