"""The creator's share of each settled charge, sent to the store's connected account.

Separate charges and transfers (docs/architecture.md says why): the charge stays on the
platform's account, where the card is vaulted for one-click offers; once it has succeeded,
`transfer_for_charge` sends `gross − fee` with `source_transaction` = the charge, so the
transfer waits for the charge's funds and can never spend the platform's own balance.

Exactly once, with ChargeAttempt's discipline:
- one `TransferAttempt` per charge attempt (a unique OneToOne), committed with its
  idempotency key before any gateway call: concurrent settlements, webhooks and reconciliation
  passes for one charge collapse to one row;
- only the caller whose conditional UPDATE moves the row CREATED → IN_FLIGHT calls the gateway;
- the result is recorded under `select_for_update`;
- a row left IN_FLIGHT (a worker killed between the call and recording it) is settled by
  `transfer_reconcile`: it lists the transfers of the charge's transfer group at the gateway
  and records the one carrying this row's key, or re-sends with the same idempotency key.

The fee is per store: `Creator.fee_bps` (basis points) and `Creator.fee_fixed` (minor units),
else `PLATFORM_FEE_BPS` / `PLATFORM_FEE_FIXED`; it never exceeds the charge.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from core.money import Money
from payments.connect import payout_account_current
from payments.gateway import GatewayRejected, GatewayUnavailable, TransferResult, get_gateway
from payments.models import AttemptStatus, ChargeAttempt, TransferAttempt, TransferStatus
from payments.public import transfer_created_notify

logger = logging.getLogger(__name__)

TRANSFER_TASK = "payments.transfer_for_charge"
IN_FLIGHT_GRACE = timedelta(minutes=2)


@dataclass(frozen=True)
class Fee:
    bps: int
    fixed: int

    def of(self, gross: int) -> int:
        """Half-up rounding of the percentage, plus the fixed part, capped at the charge."""
        return min(gross, (gross * self.bps + 5_000) // 10_000 + self.fixed)


def store_fee(creator=None) -> Fee:
    from tenants.models import Creator

    creator = creator if creator is not None else connection.tenant
    row = Creator.objects.filter(pk=creator.pk).values("fee_bps", "fee_fixed").first() or {}
    bps = row.get("fee_bps")
    fixed = row.get("fee_fixed")
    return Fee(
        bps=settings.PLATFORM_FEE_BPS if bps is None else bps,
        fixed=settings.PLATFORM_FEE_FIXED if fixed is None else fixed,
    )


def _outside_transaction(name: str) -> None:
    if any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks):
        raise RuntimeError(f"{name} calls the gateway: call it outside a transaction")


def transfer_for_charge(*, charge_attempt_id: int) -> TransferAttempt | None:
    """Make (once) and send (once) the transfer for a succeeded charge; None if there is
    nothing to send (the charge has not succeeded, or the store has no account that can
    receive money). Safe to call any number of times, concurrently."""
    _outside_transaction("transfer_for_charge")
    charge = ChargeAttempt.objects.filter(pk=charge_attempt_id).first()
    if charge is None or charge.status != AttemptStatus.SUCCEEDED or not charge.gateway_ref:
        return None  # no money moves before the charge has settled
    existing = TransferAttempt.objects.filter(charge_attempt=charge).first()
    if existing is None:
        account = payout_account_current()
        if account is None or not account.account_ref or not account.payouts_enabled:
            return None
        fee = store_fee().of(charge.amount)
        if charge.amount - fee <= 0:
            return None  # the fee takes it all: nothing to send
        source = get_gateway().payment_charge_ref(charge.gateway_ref)
        with transaction.atomic():
            existing, _ = TransferAttempt.objects.get_or_create(
                charge_attempt=charge,
                defaults={
                    "idempotency_key": f"transfer:{connection.schema_name}:{charge.pk}",
                    "destination": account.account_ref,
                    "source_charge_ref": source or "",
                    "transfer_group": charge.reference,
                    "gross": charge.amount,
                    "fee": fee,
                    "amount": charge.amount - fee,
                    "currency": charge.currency,
                },
            )
    return transfer_execute(transfer_id=existing.pk)


def transfer_execute(
    *, transfer_id: int, allow_resend: bool = False, expected_sends: int | None = None
) -> TransferAttempt:
    """Send the transfer if this caller wins the claim; everyone else gets the row as it is.

    A re-send (reconciliation only) claims an IN_FLIGHT row only while it still has the
    `expected_sends` the caller saw: of two reconcilers at once, one re-sends."""
    _outside_transaction("transfer_execute")
    claimable = Q(status=TransferStatus.CREATED)
    if allow_resend and expected_sends is not None:
        claimable |= Q(status=TransferStatus.IN_FLIGHT, sends=expected_sends)
    claimed = TransferAttempt.objects.filter(claimable, pk=transfer_id).update(
        status=TransferStatus.IN_FLIGHT, sends=F("sends") + 1, sent_at=timezone.now()
    )
    row = TransferAttempt.objects.get(pk=transfer_id)
    if not claimed:
        return row
    try:
        result = get_gateway().transfer_create(
            amount=Money(row.amount, row.currency),
            destination=row.destination,
            source_charge_ref=row.source_charge_ref or None,
            transfer_group=row.transfer_group,
            idempotency_key=row.idempotency_key,
            metadata={
                "transfer_attempt": row.idempotency_key,
                "tenant": connection.schema_name,
                "gross": str(row.gross),
                "fee": str(row.fee),
            },
        )
    except GatewayUnavailable as exc:
        logger.warning("transfer %s: gateway unavailable: %s", row.idempotency_key, exc)
        return row  # unknown outcome: stays IN_FLIGHT for transfer_reconcile
    except GatewayRejected as exc:
        return transfer_record(transfer_id=row.pk, result=None, message=str(exc))
    return transfer_record(transfer_id=row.pk, result=result)


def transfer_record(
    *, transfer_id: int, result: TransferResult | None, message: str = ""
) -> TransferAttempt:
    """Record a gateway outcome under a lock; a repeated outcome changes nothing."""
    with transaction.atomic():
        row = (
            TransferAttempt.objects.select_for_update(of=("self",))
            .select_related("charge_attempt")
            .get(pk=transfer_id)
        )
        if row.status in (TransferStatus.SUCCEEDED, TransferStatus.FAILED):
            return row
        if result is None:
            row.status, row.message = TransferStatus.FAILED, message[:300]
        else:
            row.status, row.gateway_ref = TransferStatus.SUCCEEDED, result.transfer_ref
        row.finished_at = timezone.now()
        row.save()
        if row.status == TransferStatus.SUCCEEDED:
            transfer_created_notify(row=row)  # the one move to SUCCEEDED, under the lock
        return row


def transfer_reconcile(*, transfer_id: int, grace: timedelta = IN_FLIGHT_GRACE) -> TransferAttempt:
    """Settle a row left IN_FLIGHT: record the gateway's transfer for its key, else re-send
    with the same key (the gateway answers a repeat with the first transfer).

    Only a row in flight for longer than `grace`: a call still under way must not race its own
    re-send (Stripe answers two concurrent requests with one key with a conflict)."""
    _outside_transaction("transfer_reconcile")
    row = TransferAttempt.objects.get(pk=transfer_id)
    if row.status != TransferStatus.IN_FLIGHT:
        return row
    if row.sent_at is not None and row.sent_at > timezone.now() - grace:
        return row
    for found in get_gateway().transfers_find(transfer_group=row.transfer_group):
        if found.metadata.get("transfer_attempt") == row.idempotency_key:
            return transfer_record(transfer_id=row.pk, result=found)
    return transfer_execute(transfer_id=row.pk, allow_resend=True, expected_sends=row.sends)


def transfers_reconcile_open() -> int:
    """Every transfer row not finished (beat's reconciliation); returns how many were looked at."""
    done = 0
    stale = timezone.now() - IN_FLIGHT_GRACE
    open_rows = TransferAttempt.objects.filter(
        status=TransferStatus.CREATED, created_at__lt=stale
    ).values_list("pk", flat=True)
    for pk in list(open_rows):
        try:
            transfer_execute(transfer_id=pk)
        except Exception:  # one bad row never stops the loop
            logger.exception("transfer %s could not be sent", pk)
        done += 1
    in_flight = TransferAttempt.objects.filter(
        status=TransferStatus.IN_FLIGHT, sent_at__lt=stale
    ).values_list("pk", flat=True)
    for pk in list(in_flight):
        try:
            transfer_reconcile(transfer_id=pk)
        except Exception:
            logger.exception("transfer %s could not be reconciled", pk)
        done += 1
    return done


def on_attempt_outcome(attempt: ChargeAttempt) -> None:
    """Outcome handler (registered in payments.apps): a charge that just succeeded in a store
    that can receive transfers queues its transfer, in the recording transaction (outbox)."""
    if attempt.status != AttemptStatus.SUCCEEDED:
        return
    account = payout_account_current()
    if account is None or not account.payouts_enabled:
        return
    from core.tasks import enqueue

    enqueue(TRANSFER_TASK, charge_attempt_id=attempt.pk)
