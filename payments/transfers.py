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

The fee is per store (payments.fees) and a charge keeps the one it was made under; it never
exceeds the charge.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from core.money import Money
from payments.connect import payout_account_current
from payments.fees import charge_fee
from payments.gateway import (
    GatewayRejected,
    GatewayUnavailable,
    ReversalResult,
    TransferResult,
    get_gateway,
)
from payments.models import (
    AttemptStatus,
    ChargeAttempt,
    Dispute,
    DisputeStatus,
    LedgerEntry,
    LedgerKind,
    PayoutEntry,
    PayoutKind,
    ReversalStatus,
    TransferAttempt,
    TransferReversal,
    TransferStatus,
)
from payments.public import transfer_created_notify

logger = logging.getLogger(__name__)

TRANSFER_TASK = "payments.transfer_for_charge"
REVERSAL_TASK = "payments.reverse_for_cause"
REVERSALS_TASK = "payments.reversals_send"
IN_FLIGHT_GRACE = timedelta(minutes=2)


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
        fee = charge_fee(charge).of(charge.amount)
        if creator_share(gross=charge.amount, fee=fee, taken_back=_taken_back(charge)) <= 0:
            return None  # the fee or refunds take it all: nothing to send, no gateway call
        source = get_gateway().payment_charge_ref(charge.gateway_ref)
        with transaction.atomic():
            # The charge's row lock orders this against reversal_for_cause: a refund or
            # lost dispute recorded before the transfer row is netted out of it, one
            # recorded after gets its own reversal; never both, never neither.
            ChargeAttempt.objects.select_for_update().filter(pk=charge.pk).first()
            existing = TransferAttempt.objects.filter(charge_attempt=charge).first()
            if existing is None:
                existing = _transfer_row_create(charge, fee, account.account_ref, source)
                if existing is None:
                    return None  # all of it was taken back before it was sent
    return transfer_execute(transfer_id=existing.pk)


def creator_share(*, gross: int, fee: int, taken_back: int) -> int:
    """The creator's share of a charge once `taken_back` of it has been refunded or lost in a
    dispute: the transfer (gross − fee) in proportion to what is left of the charge, half up.
    Reversals are differences of this cumulative value, so a charge's reversals add up to
    exactly its transfer once all of it has been taken back (no drift from rounding each)."""
    left = min(max(gross - taken_back, 0), gross)
    if gross <= 0:
        return 0
    return ((gross - fee) * left * 2 + gross) // (2 * gross)


def _dispute_lost(dispute_ref: str) -> bool:
    return Dispute.objects.filter(gateway_ref=dispute_ref, status=DisputeStatus.LOST).exists()


def _causes(charge: ChargeAttempt) -> dict[str, tuple[int, str]]:
    """What took money back from this charge for good so far, by cause: {"refund:re_…":
    (amount, ref)}. A dispute counts once it is lost: while it is open the platform carries
    it, before the transfer as after it, and a won one gives everything back."""
    lost = Dispute.objects.filter(status=DisputeStatus.LOST).values("gateway_ref")
    rows = (
        LedgerEntry.objects.filter(
            Q(kind=LedgerKind.REFUND) | Q(kind=LedgerKind.CHARGEBACK, gateway_ref__in=lost),
            reference=charge.reference,
            line_key__in=list(charge.allocation),
        )
        .values("kind", "gateway_ref")
        .annotate(total=Sum("amount"))
        .order_by("kind", "gateway_ref")
    )
    causes = {cause_name(r["kind"], r["gateway_ref"]): (r["total"], r["gateway_ref"]) for r in rows}
    return {cause: value for cause, value in causes.items() if value[0] > 0}


def _taken_back(charge: ChargeAttempt, causes: dict | None = None) -> int:
    causes = _causes(charge) if causes is None else causes
    return min(sum(amount for amount, _ in causes.values()), charge.amount)


def cause_name(kind: str, gateway_ref: str) -> str:
    """A reversal's cause: "refund:re_…" or "dispute:dp_…" (a chargeback or its reinstatement)."""
    disputed = kind in (LedgerKind.CHARGEBACK, LedgerKind.REINSTATED)
    return f"{'dispute' if disputed else 'refund'}:{gateway_ref}"


def _transfer_row_create(
    charge: ChargeAttempt, fee: int, destination: str, source: str | None
) -> TransferAttempt | None:
    """Inside the charge's lock: the transfer row, less what was refunded or disputed before it
    (each such cause is a NETTED reversal row, so its own reversal task changes nothing)."""
    causes = _causes(charge)
    amount = creator_share(gross=charge.amount, fee=fee, taken_back=_taken_back(charge, causes))
    if amount <= 0:
        return None
    row = TransferAttempt.objects.create(
        charge_attempt=charge,
        idempotency_key=f"transfer:{connection.schema_name}:{charge.pk}",
        destination=destination,
        source_charge_ref=source or "",
        transfer_group=charge.reference,
        gross=charge.amount,
        fee=fee,
        amount=amount,
        currency=charge.currency,
    )
    for cause, (covered, _ref) in causes.items():
        _reversal_row_create(row, cause, covered, netted=True)
    return row


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


def _charge_lock(**lookup) -> None:
    """The charge attempt's row lock, taken first by every transaction that writes a charge's
    transfer, reversals or payout entries: one order for them all. A writer that locked the
    transfer row first and then needed the charge (the payout entry's foreign key check at
    COMMIT) deadlocked with `reversal_for_cause`, which holds the charge and needs the
    transfer (tests/payments/test_dispute_transfers.py)."""
    ChargeAttempt.objects.select_for_update(of=("self",)).filter(**lookup).first()


def transfer_record(
    *, transfer_id: int, result: TransferResult | None, message: str = ""
) -> TransferAttempt:
    """Record a gateway outcome under a lock; a repeated outcome changes nothing."""
    with transaction.atomic():
        _charge_lock(transfer=transfer_id)
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
            netted = row.reversals.filter(status=ReversalStatus.NETTED).aggregate(
                covered=Sum("covered")
            )["covered"]
            gross = row.gross - (netted or 0)
            PayoutEntry.objects.bulk_create(
                [
                    PayoutEntry(
                        kind=PayoutKind.TRANSFER,
                        gateway_ref=row.gateway_ref,
                        reference=row.transfer_group,
                        attempt_id=row.charge_attempt_id,
                        gross=gross,
                        fee=max(gross - row.amount, 0),
                        amount=row.amount,
                        currency=row.currency,
                    )
                ],
                ignore_conflicts=True,
            )
        row.finished_at = timezone.now()
        row.save()
        if row.status == TransferStatus.SUCCEEDED:
            transfer_created_notify(row=row)  # the one move to SUCCEEDED, under the lock
        if row.reversals.filter(status=ReversalStatus.CREATED).exists():
            from core.tasks import enqueue

            # Reversals recorded while the transfer was on its way: send (or cancel) them now.
            enqueue(REVERSALS_TASK, transfer_id=row.pk)
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


# --- reversals: a refund or a lost dispute takes back the creator's share -------------------


def _reversal_row_create(
    transfer: TransferAttempt, cause: str, covered: int, *, netted: bool = False
) -> TransferReversal:
    """Inside the charge's lock: the reversal row for `cause`, its amount the difference of
    the creator's cumulative share before and after it (capped at what is left)."""
    before = transfer.reversals.aggregate(total=Sum("covered"))["total"] or 0
    covered = max(min(covered, transfer.gross - before), 0)
    share = creator_share(gross=transfer.gross, fee=transfer.fee, taken_back=before) - (
        creator_share(gross=transfer.gross, fee=transfer.fee, taken_back=before + covered)
    )
    if netted or share <= 0:
        status = ReversalStatus.NETTED
    elif transfer.status == TransferStatus.FAILED:
        status = ReversalStatus.CANCELED
    else:
        status = ReversalStatus.CREATED
    return TransferReversal.objects.create(
        transfer=transfer,
        cause=cause,
        idempotency_key=f"reversal:{connection.schema_name}:{transfer.pk}:{cause}",
        covered=covered,
        amount=share,
        fee=covered - share,
        currency=transfer.currency,
        status=status,
        finished_at=timezone.now() if status != ReversalStatus.CREATED else None,
    )


def reversal_for_cause(
    *, charge_attempt_id: int, cause: str, covered: int
) -> TransferReversal | None:
    """Make (once) the reversal of `cause` for a charge's transfer; None if the charge has no
    transfer (then the transfer, when made, is made less this cause)."""
    with transaction.atomic():
        ChargeAttempt.objects.select_for_update().filter(pk=charge_attempt_id).first()
        transfer = TransferAttempt.objects.filter(charge_attempt_id=charge_attempt_id).first()
        if transfer is None:
            return None
        row = TransferReversal.objects.filter(transfer=transfer, cause=cause).first()
        return row or _reversal_row_create(transfer, cause, covered)


def reverse_for_cause(*, kind: str, gateway_ref: str) -> list[TransferReversal]:
    """A refund or a lost dispute recorded in the ledger (one gateway object, over one or more
    lines): take the creator's share of it back from each charge's transfer. Safe to call any
    number of times, concurrently."""
    _outside_transaction("reverse_for_cause")
    if kind == LedgerKind.CHARGEBACK and not _dispute_lost(gateway_ref):
        return []  # an open dispute takes nothing back yet, a won one never will
    entries = list(LedgerEntry.objects.filter(kind=kind, gateway_ref=gateway_ref))
    per_charge: dict[int, int] = {}
    for entry in entries:
        charge = (
            LedgerEntry.objects.filter(
                kind=LedgerKind.CHARGE, reference=entry.reference, line_key=entry.line_key
            )
            .exclude(attempt=None)
            .values_list("attempt_id", flat=True)
            .first()
        )
        if charge is not None:
            per_charge[charge] = per_charge.get(charge, 0) + entry.amount
    done = []
    for charge_id, covered in sorted(per_charge.items()):
        row = reversal_for_cause(
            charge_attempt_id=charge_id, cause=cause_name(kind, gateway_ref), covered=covered
        )
        if row is not None:
            done.append(reversal_execute(reversal_id=row.pk))
    return done


def reversal_execute(
    *, reversal_id: int, allow_resend: bool = False, expected_sends: int | None = None
) -> TransferReversal:
    """Send the reversal if this caller wins the claim (and its transfer has succeeded);
    everyone else gets the row as it is."""
    _outside_transaction("reversal_execute")
    row = TransferReversal.objects.select_related("transfer").get(pk=reversal_id)
    if row.transfer.status == TransferStatus.FAILED:
        TransferReversal.objects.filter(pk=row.pk, status=ReversalStatus.CREATED).update(
            status=ReversalStatus.CANCELED, finished_at=timezone.now()
        )
        return TransferReversal.objects.get(pk=row.pk)
    if row.transfer.status != TransferStatus.SUCCEEDED:
        return row  # sent when the transfer is recorded (transfer_record queues it)
    claimable = Q(status=ReversalStatus.CREATED)
    if allow_resend and expected_sends is not None:
        claimable |= Q(status=ReversalStatus.IN_FLIGHT, sends=expected_sends)
    claimed = TransferReversal.objects.filter(claimable, pk=reversal_id).update(
        status=ReversalStatus.IN_FLIGHT, sends=F("sends") + 1, sent_at=timezone.now()
    )
    row = TransferReversal.objects.select_related("transfer").get(pk=reversal_id)
    if not claimed:
        return row
    try:
        result = get_gateway(paid_by=row.transfer.gateway_ref).transfer_reversal_create(
            transfer_ref=row.transfer.gateway_ref,
            amount=Money(row.amount, row.currency),
            idempotency_key=row.idempotency_key,
            metadata={
                "transfer_reversal": row.idempotency_key,
                "tenant": connection.schema_name,
                "cause": row.cause,
                "covered": str(row.covered),
            },
        )
    except GatewayUnavailable as exc:
        logger.warning("reversal %s: gateway unavailable: %s", row.idempotency_key, exc)
        return row  # unknown outcome: stays IN_FLIGHT for reversal_reconcile
    except GatewayRejected as exc:
        return reversal_record(reversal_id=row.pk, result=None, message=str(exc))
    return reversal_record(reversal_id=row.pk, result=result)


def reversal_record(
    *, reversal_id: int, result: ReversalResult | None, message: str = ""
) -> TransferReversal:
    """Record a gateway outcome under a lock, and the reversal in the payout ledger."""
    with transaction.atomic():
        _charge_lock(transfer__reversals=reversal_id)
        row = TransferReversal.objects.select_for_update().get(pk=reversal_id)
        if row.status not in (ReversalStatus.CREATED, ReversalStatus.IN_FLIGHT):
            return row
        if result is None:
            row.status, row.message = ReversalStatus.FAILED, message[:300]
            logger.error("reversal %s refused: %s", row.idempotency_key, message)
        else:
            row.status, row.gateway_ref = ReversalStatus.SUCCEEDED, result.reversal_ref
            transfer = TransferAttempt.objects.get(pk=row.transfer_id)
            PayoutEntry.objects.bulk_create(
                [
                    PayoutEntry(
                        kind=PayoutKind.REVERSAL,
                        gateway_ref=result.reversal_ref,
                        reference=transfer.transfer_group,
                        attempt_id=transfer.charge_attempt_id,
                        gross=row.covered,
                        fee=row.fee,
                        amount=row.amount,
                        currency=row.currency,
                    )
                ],
                ignore_conflicts=True,
            )
        row.finished_at = timezone.now()
        row.save()
        return row


def reversal_reconcile(*, reversal_id: int, grace: timedelta = IN_FLIGHT_GRACE) -> TransferReversal:
    """Settle a reversal left IN_FLIGHT: record the gateway's reversal carrying its key, else
    re-send the same key. Only after `grace`, as for transfers; a CREATED one is sent."""
    _outside_transaction("reversal_reconcile")
    row = TransferReversal.objects.select_related("transfer").get(pk=reversal_id)
    if row.status == ReversalStatus.CREATED:
        return reversal_execute(reversal_id=row.pk)
    if row.status != ReversalStatus.IN_FLIGHT:
        return row
    if row.sent_at is not None and row.sent_at > timezone.now() - grace:
        return row
    gateway = get_gateway(paid_by=row.transfer.gateway_ref)
    for found in gateway.transfer_reversals_list(transfer_ref=row.transfer.gateway_ref):
        if found.metadata.get("transfer_reversal") == row.idempotency_key:
            return reversal_record(reversal_id=row.pk, result=found)
    return reversal_execute(reversal_id=row.pk, allow_resend=True, expected_sends=row.sends)


def reversals_send(*, transfer_id: int) -> int:
    """The reversals of one transfer that waited for it (task queued by transfer_record)."""
    ids = TransferReversal.objects.filter(
        transfer_id=transfer_id, status=ReversalStatus.CREATED
    ).values_list("pk", flat=True)
    for pk in list(ids):
        reversal_execute(reversal_id=pk)
    return len(ids)


def _payouts_connected() -> bool:
    account = payout_account_current()
    return account is not None and bool(account.account_ref)


def on_ledger_entry(entry: LedgerEntry) -> None:
    """Ledger handler (registered in payments.apps): a refund recorded in a store with a
    connected account queues the reversal of the creator's share, in the recording
    transaction (outbox). Disputes are reversed when lost (`on_dispute_lost`)."""
    if entry.kind != LedgerKind.REFUND or not _payouts_connected():
        return
    from core.tasks import enqueue

    enqueue(REVERSAL_TASK, kind=entry.kind, gateway_ref=entry.gateway_ref)


def on_dispute_lost(*, dispute_ref: str) -> None:
    """Called by disputes.dispute_sync (in its transaction) when the gateway says a
    dispute is lost: the creator's share of the chargeback is taken back."""
    if not _payouts_connected():
        return
    from core.tasks import enqueue

    enqueue(REVERSAL_TASK, kind=LedgerKind.CHARGEBACK, gateway_ref=dispute_ref)
