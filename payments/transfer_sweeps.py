"""Beat's transfer reconciliation (`payments.transfers_reconcile`, per store): everything the
transfer and reversal tasks should have done and did not. A row left CREATED or IN_FLIGHT (a
killed worker, an unknown answer) is sent or looked up by its key; money with no row at all
(its task lost with a broker's data, or a charge that settled while the store's payouts were
pending) gets its row now. Each step is payments.transfers' own, safe to run twice at once."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import ExpressionWrapper, F, IntegerField, Q, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce, Substr
from django.utils import timezone

from core.loops import each_pk_done, each_record
from payments import transfers
from payments.connect import payout_account_current
from payments.fees import store_fee
from payments.models import (
    AttemptStatus,
    ChargeAttempt,
    Dispute,
    DisputeStatus,
    LedgerEntry,
    LedgerKind,
    ReversalStatus,
    TransferAttempt,
    TransferReversal,
    TransferStatus,
)
from payments.transfers import (
    IN_FLIGHT_GRACE,
    reversal_reconcile,
    reverse_for_cause,
    transfer_execute,
    transfer_for_charge,
    transfer_reconcile,
)

MISSING_WINDOW = timedelta(days=90)  # how far back `transfers_missing_send` looks
MISSING_PER_RUN = 200  # transfers it makes at most per run (each a gateway call)
LOOP_MISSING = "payments.transfers_missing"
LOOP_UNSENT = "payments.transfers_unsent"
LOOP_IN_FLIGHT = "payments.transfers_in_flight"
LOOP_REVERSALS_MISSING = "payments.reversals_missing"
LOOP_REVERSALS_OPEN = "payments.reversals_open"


# What refunds and lost disputes took back from a charge attempt: its lines' entries in the
# ledger, as payments.transfers._causes counts them (an open or won dispute takes nothing).
_TAKEN_BACK = """
SELECT COALESCE(SUM(e.amount), 0) FROM payments_ledgerentry e
WHERE e.reference = payments_chargeattempt.reference
  AND e.line_key IN (SELECT jsonb_object_keys(CASE
        WHEN jsonb_typeof(payments_chargeattempt.allocation) = 'object'
        THEN payments_chargeattempt.allocation ELSE '{}'::jsonb END))
  AND (e.kind = %s OR (e.kind = %s AND e.gateway_ref
        IN (SELECT d.gateway_ref FROM payments_dispute d WHERE d.status = %s)))
"""
_TAKEN_BACK_PARAMS = [LedgerKind.REFUND, LedgerKind.CHARGEBACK, DisputeStatus.LOST]


def charges_missing_transfer():
    """Settled charges of the last MISSING_WINDOW with no transfer row, oldest first, less
    those that can never send anything, so that beat does not read them again every run:
    refunded or lost in full (their share is 0 whatever the fee), or whose fee takes all of it
    (`Fee.of` in SQL, the same integer arithmetic, with the charge's own fee)."""
    now = timezone.now()
    fee = store_fee()
    return (
        ChargeAttempt.objects.filter(
            status=AttemptStatus.SUCCEEDED,
            demo=False,
            transfer__isnull=True,
            finished_at__range=(now - MISSING_WINDOW, now - IN_FLIGHT_GRACE),
        )
        .exclude(gateway_ref="")
        .alias(
            taken_back=RawSQL(_TAKEN_BACK, _TAKEN_BACK_PARAMS, output_field=IntegerField()),
            fee=ExpressionWrapper(  # payments.fees: the charge's own fee, else the store's
                (F("amount") * Coalesce("fee_bps", Value(fee.bps)) + 5_000) / 10_000
                + Coalesce("fee_fixed", Value(fee.fixed)),
                output_field=IntegerField(),
            ),
        )
        .filter(taken_back__lt=F("amount"), fee__lt=F("amount"))
        .order_by("finished_at", "pk")
    )


def transfers_missing_send() -> int:
    """Settled charges with no transfer row (`charges_missing_transfer`): their message was
    lost with a broker's data, or they settled while the store's payouts were pending (a store
    takes payments once charges are enabled). Sent now, once (`transfer_for_charge`), at most
    MISSING_PER_RUN a run: a store that connects its payouts after many sales is caught up
    over a few runs, each within beat's period."""
    account = payout_account_current()
    if account is None or not account.account_ref or not account.payouts_enabled:
        return 0
    return each_pk_done(
        LOOP_MISSING,
        charges_missing_transfer(),
        lambda pk: transfer_for_charge(charge_attempt_id=pk),
        limit=MISSING_PER_RUN,
        what="the transfer for charge attempt",
    )


def _each(loop: str, records: list, work, what: str, key=lambda record: record) -> int:
    """`work` over `records` (core.loops: one that fails is recorded and skipped, the others
    go on); how many were looked at."""
    run = each_record(loop, records, work, key=key, label=lambda r: f"{what} {key(r)}")
    return len(run.results) + len(run.failed)


def transfers_reconcile_open() -> int:
    """Beat's reconciliation: rows not finished and charges with none; how many it looked at."""
    done = transfers_missing_send()
    stale = timezone.now() - IN_FLIGHT_GRACE
    rows = TransferAttempt.objects.values_list("pk", flat=True)
    unsent = list(rows.filter(status=TransferStatus.CREATED, created_at__lt=stale))
    done += _each(LOOP_UNSENT, unsent, lambda pk: transfer_execute(transfer_id=pk), "transfer")
    in_flight = list(rows.filter(status=TransferStatus.IN_FLIGHT, sent_at__lt=stale))
    done += _each(
        LOOP_IN_FLIGHT, in_flight, lambda pk: transfer_reconcile(transfer_id=pk), "transfer"
    )
    return done + reversals_reconcile_open()


def reversals_reconcile_open() -> int:
    """Beat's sweep: reversals not finished, and refunds and lost disputes of transferred
    charges that have no reversal row yet (a lost task); returns how many were looked at."""
    stale = timezone.now() - IN_FLIGHT_GRACE
    done = _each(
        LOOP_REVERSALS_MISSING,
        causes_without_reversal(stale),
        lambda cause: reverse_for_cause(kind=cause[0], gateway_ref=cause[1]),
        "the reversal of",
        key=lambda cause: transfers.cause_name(*cause),
    )
    open_rows = TransferReversal.objects.filter(
        Q(status=ReversalStatus.CREATED, created_at__lt=stale)
        | Q(status=ReversalStatus.IN_FLIGHT, sent_at__lt=stale)
    ).values_list("pk", flat=True)
    return done + _each(
        LOOP_REVERSALS_OPEN,
        list(open_rows),
        lambda pk: reversal_reconcile(reversal_id=pk),
        "reversal",
    )


def causes_without_reversal(stale) -> list[tuple[str, str]]:
    """(ledger kind, gateway ref) of refunds recorded before `stale`, and of disputes lost
    before it, on transferred charges, that have no reversal row: the task that takes the
    creator's share back never ran. A won dispute takes nothing back and is not listed."""
    transferred = TransferAttempt.objects.values("transfer_group")
    lost = Dispute.objects.filter(status=DisputeStatus.LOST, updated_at__lt=stale)
    found: list[tuple[str, str]] = []
    for kind, entries in (
        (LedgerKind.REFUND, LedgerEntry.objects.filter(created_at__lt=stale)),
        (
            LedgerKind.CHARGEBACK,
            LedgerEntry.objects.filter(gateway_ref__in=lost.values("gateway_ref")),
        ),
    ):
        prefix = transfers.cause_name(kind, "")
        with_reversal = (
            TransferReversal.objects.filter(cause__startswith=prefix)
            .annotate(ref=Substr("cause", len(prefix) + 1))
            .values("ref")
        )
        refs = (
            entries.filter(kind=kind, reference__in=transferred)
            .exclude(gateway_ref__in=with_reversal)
            .values_list("gateway_ref", flat=True)
            .distinct()
        )
        found += [(kind, ref) for ref in refs]
    return found
