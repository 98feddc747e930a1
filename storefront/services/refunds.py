"""Refunding an order's lines: the one service the admin, the partner API and any later caller
use. It passes the line's tax (so the tax part is reversed in proportion), writes one audit row
per refund, and tells a repeat of an idempotency key from a new refund (a repeat refunds
nothing and is not audited again)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Sum
from django.http import HttpRequest

from audit.services import audit_record
from core.money import Money
from payments.models import Refund, RefundStatus
from payments.services import (
    LineTax,
    RefundLine,
    RefundRefused,
    ledger_line_totals,
    refund_create,
    refund_create_for_order,
)
from storefront.models import Order, OrderLine, StoreSettings

__all__ = ["RefundOutcome", "RefundRefused", "order_line_refund", "order_refund_all"]


@dataclass(frozen=True)
class RefundOutcome:
    refunds: list[Refund]
    repeat: bool  # the key was used before: these are that request's refunds, nothing new


def _line_tax(line: OrderLine) -> LineTax:
    return LineTax(total=line.total_amount, tax=line.tax_amount)


def _audit(*, actor, order: Order, refunds: list[Refund], channel: str) -> None:
    with transaction.atomic():
        for refund in refunds:
            amount = Money(refund.amount, refund.currency)
            audit_record(
                request_or_actor=actor,
                action="payments.refund.issue",
                obj=refund,
                changes={
                    "reference": refund.reference,
                    "line_key": refund.line_key,
                    "amount": [None, refund.amount],
                    "tax_amount": [None, refund.tax_amount],
                    "currency": refund.currency,
                    "status": [None, refund.status],
                    "reason": refund.reason,
                },
                summary=f"Refund of {amount} on {order} ({refund.line_key}){channel}: "
                f"{refund.status}",
            )


def _acting_user(actor):
    """The staff member behind `actor` (a request or a user), or None (an API key, a task)."""
    if isinstance(actor, HttpRequest):
        actor = getattr(actor, "user", None)
    if getattr(actor, "is_authenticated", False):
        return actor
    return None


def _left(order: Order, line_key: str | None = None) -> tuple[int, int]:
    """(refunded so far on the order, left to refund on `line_key` or on every line)."""
    totals = ledger_line_totals(reference=order.reference)
    refunded = sum(t["refund"] for t in totals.values())
    left = sum(
        max(t["charge"] - t["refund"] - t["chargeback"], 0)
        for key, t in totals.items()
        if line_key is None or key == line_key
    )
    return refunded, left


def refund_limit_check(*, actor, order: Order, amount: int | None) -> None:
    """Support staff (no `storefront.refund_above_limit`) may take an order's refunds up to
    the store's `support_refund_limit` in all; beyond it a manager or the owner decides.
    Counted per order, so splitting a refund in parts does not get around it. Raises
    RefundRefused with the reason. API keys and the store's own tasks are not staff: their
    limits are the key's scope and the ledger's.

    Runs as the refund's `guard`, inside the transaction that reserves it, holding the
    order's row lock: two refunds of one order at once are counted one after the other, and
    refunds reserved but not yet at the gateway count too. `amount` None: all that is left."""
    user = _acting_user(actor)
    if user is None or user.has_perm("storefront.refund_above_limit"):
        return
    Order.objects.select_for_update().filter(pk=order.pk).values_list("pk", flat=True).get()
    limit = StoreSettings.current().support_refund_limit
    refunded, left = _left(order)
    pending = (
        Refund.objects.filter(
            reference=order.reference, status__in=[RefundStatus.CREATED, RefundStatus.IN_FLIGHT]
        ).aggregate(total=Sum("amount"))["total"]
        or 0
    )
    refunded += pending
    amount = max(left - pending, 0) if amount is None else amount
    if refunded + amount > limit:
        raise RefundRefused(
            f"refunds above {Money(limit, order.currency)} per order need a manager or the "
            f"owner (the store's support refund limit): this one would bring "
            f"{order.reference}'s refunds to {Money(refunded + amount, order.currency)}"
        )


def order_line_refund(
    *,
    order: Order,
    line: OrderLine,
    amount: Money | None,
    reason: str,
    actor,
    requested_by: str,
    idempotency_key: str,
    channel: str = "",
) -> RefundOutcome:
    """Refund `amount` (None: everything left) of one line of `order`. Raises RefundRefused
    with the reason when the line has no such amount left, or `line` is not the order's."""
    if line.order_id != order.pk:
        raise RefundRefused(f"{line.line_key} is not a line of {order.reference}")
    repeat = Refund.objects.filter(idempotency_key=idempotency_key).exists()

    def guard() -> None:
        wanted = amount.amount if amount is not None else _left(order, line.line_key)[1]
        refund_limit_check(actor=actor, order=order, amount=wanted)

    refund = refund_create(
        guard=None if repeat else guard,
        reference=order.reference,
        line_key=line.line_key,
        amount=amount,
        reason=reason,
        requested_by=requested_by,
        idempotency_key=idempotency_key,
        line_tax=_line_tax(line),
    )
    if not repeat:
        _audit(actor=actor, order=order, refunds=[refund], channel=channel)
    return RefundOutcome([refund], repeat)


def order_refund_all(
    *,
    order: Order,
    reason: str,
    actor,
    requested_by: str,
    idempotency_key: str,
    channel: str = "",
) -> RefundOutcome:
    """Refund everything left on every line of `order` (tax reversed in proportion per line).
    Raises RefundRefused when nothing is left."""
    repeat = Refund.objects.filter(idempotency_key__startswith=f"{idempotency_key}:").exists()
    lines = [RefundLine(line.line_key, _line_tax(line)) for line in order.lines.all()]
    refunds = refund_create_for_order(
        guard=None if repeat else lambda: refund_limit_check(actor=actor, order=order, amount=None),
        reference=order.reference,
        lines=lines,
        reason=reason,
        requested_by=requested_by,
        idempotency_key=idempotency_key,
    )
    if not repeat:
        _audit(actor=actor, order=order, refunds=refunds, channel=channel)
    return RefundOutcome(refunds, repeat)
