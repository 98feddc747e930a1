"""Disputes as a lifecycle: one Dispute row per gateway dispute, its money in the ledger.

A dispute is re-read from the gateway on every hint (a charge.dispute.* webhook, the
periodic reconciliation), never applied from a payload, so replays and out-of-order events
end in the same state:

- the row (unique per gateway dispute) takes the status, reason, amount and evidence due
  date the gateway gives now; a final status (won, lost, warning_closed) never moves again;
- funds withdrawn → one CHARGEBACK ledger entry per line (allocated by what each line was
  charged); funds reinstated (a won dispute) → one REINSTATED entry mirroring each of them,
  so the dispute nets to zero. Both are unique per (kind, dispute, line): a replay adds none;
- the first time a dispute is seen won or lost (the row's move to that status, or its
  creation with it, is the claim), the registered dispute handlers run in the same
  transaction (storefront: the order's `dispute_won` / `dispute_lost` event; subscriptions: a
  lost dispute cancels the subscription), and a lost one takes back the creator's share
  (transfers).

Access follows the ledger (storefront.services.delivery): it is suspended while the funds are
withdrawn, restored when a win reinstates them, and ends for good when the dispute is lost.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from core.loops import each_record, quarantined_pks
from payments.gateway import DisputeResult, GatewayAuthFailed, GatewayUnavailable, get_gateway
from payments.models import (
    DISPUTE_FINAL_STATUSES,
    DISPUTE_OPEN_STATUSES,
    ChargeAttempt,
    Dispute,
    DisputeStatus,
    LedgerEntry,
    LedgerKind,
)
from payments.reconciliation import _payment_lines, allocate, payment_sync
from payments.services import _ledger_add
from payments.transfers import on_dispute_lost

LOOP_DISPUTES = "payments.reconcile_disputes"

DisputeHandler = Callable[[Dispute], None]
_handlers: list[DisputeHandler] = []


def dispute_handler_register(fn: DisputeHandler) -> None:
    """Called (in the recording transaction) once when a dispute is first seen won or lost."""
    if fn not in _handlers:
        _handlers.append(fn)


def _withdrawn(result: DisputeResult) -> bool:
    if result.funds_withdrawn is not None:
        return result.funds_withdrawn
    return not result.status.startswith("warning_")  # Stripe withdraws when a dispute opens


def _reinstated(result: DisputeResult) -> bool:
    if result.funds_reinstated is not None:
        return result.funds_reinstated
    return result.status == DisputeStatus.WON


def _due(result: DisputeResult) -> dt.datetime | None:
    if not result.evidence_due_by:
        return None
    return dt.datetime.fromtimestamp(int(result.evidence_due_by), tz=dt.UTC)


def dispute_sync(*, dispute_ref: str) -> bool:
    """Re-read a dispute and record what it says. True if it is one of our payments'."""
    result = get_gateway().dispute_retrieve(dispute_ref)
    if not result.payment_ref:
        return False
    if not _payment_lines(result.payment_ref, lock=False):
        payment_sync(payment_ref=result.payment_ref)  # the dispute overtook the payment
    with transaction.atomic():
        charges = _payment_lines(result.payment_ref, lock=True)
        if not charges:
            return False
        weights = {c.line_key: c.amount for c in charges}
        amount = min(result.amount.amount, sum(weights.values()))
        row, final_now = _row_record(result, charges, allocate(amount, weights))
        if _withdrawn(result) or _reinstated(result):
            for line_key, part in row.lines.items():
                _ledger_add(
                    kind=LedgerKind.CHARGEBACK,
                    gateway_ref=dispute_ref,
                    reference=row.reference,
                    line_key=line_key,
                    amount=part,
                    currency=row.currency,
                )
        if _reinstated(result):
            chargebacks = LedgerEntry.objects.filter(
                kind=LedgerKind.CHARGEBACK, gateway_ref=dispute_ref
            ).order_by("pk")
            for entry in chargebacks:
                _ledger_add(
                    kind=LedgerKind.REINSTATED,
                    gateway_ref=dispute_ref,
                    reference=entry.reference,
                    line_key=entry.line_key,
                    amount=entry.amount,
                    currency=entry.currency,
                )
        if final_now:
            if row.status == DisputeStatus.LOST:  # the creator's share goes back
                on_dispute_lost(dispute_ref=dispute_ref)
            for handler in _handlers:
                handler(row)
    return True


def _row_record(
    result: DisputeResult, charges: list[LedgerEntry], lines: dict[str, int]
) -> tuple[Dispute, bool]:
    """Inside the charge rows' lock: create or update the row. Returns (row, whether it has
    just reached won or lost)."""
    row = Dispute.objects.select_for_update().filter(gateway_ref=result.dispute_ref).first()
    fields = {
        "reason": (result.reason or "")[:60],
        "amount": sum(lines.values()),
        "currency": charges[0].currency,
        "evidence_due_by": _due(result),
    }
    if row is None:
        attempt = ChargeAttempt.objects.filter(gateway_ref=result.payment_ref).first()
        row = Dispute.objects.create(
            gateway_ref=result.dispute_ref,
            payment_ref=result.payment_ref or "",
            reference=charges[0].reference,
            attempt=attempt,
            lines=lines,
            status=result.status[:24],
            closed_at=timezone.now() if result.status in DISPUTE_FINAL_STATUSES else None,
            **fields,
        )
        return row, row.status in (DisputeStatus.WON, DisputeStatus.LOST)
    if row.status in DISPUTE_FINAL_STATUSES or row.status == result.status:
        # Final is final: a stale read (an older event processed late) changes nothing.
        if row.status == result.status and row.evidence_due_by != fields["evidence_due_by"]:
            Dispute.objects.filter(pk=row.pk).update(evidence_due_by=fields["evidence_due_by"])
        return row, False
    # Conditional, as every status move: only from an open status.
    # The move that made it is the claim on the outcome (its handlers and events run once).
    closed = result.status in DISPUTE_FINAL_STATUSES
    moved = Dispute.objects.filter(pk=row.pk, status__in=DISPUTE_OPEN_STATUSES).update(
        status=result.status[:24],
        closed_at=timezone.now() if closed else None,
        updated_at=timezone.now(),
        **fields,
    )
    row.refresh_from_db()
    return row, bool(moved) and row.status in (DisputeStatus.WON, DisputeStatus.LOST)


def disputes_reconcile(*, report) -> None:
    """The periodic run: re-read every open dispute (a missed or failed webhook is caught
    here). One bad dispute never stops the others (core.loops)."""
    rows = list(
        Dispute.objects.filter(status__in=DISPUTE_OPEN_STATUSES)
        .exclude(pk__in=quarantined_pks(LOOP_DISPUTES))
        .order_by("pk")
        .values_list("pk", "gateway_ref")
    )
    run = each_record(
        LOOP_DISPUTES,
        rows,
        lambda row: dispute_sync(dispute_ref=row[1]),
        key=lambda row: row[0],
        label=lambda row: f"dispute {row[1]}",
        stop_on=(GatewayUnavailable, GatewayAuthFailed),
    )
    report.disputes += len(rows)
    report.errors += [f"dispute {e}" for e in run.failed]
