"""The order status machine and what happens when payments record an outcome."""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from analytics.models import EventName
from analytics.services import event_append
from core import orderkeys
from core.returning import update_returning_with_related
from core.tasks import enqueue, enqueue_many
from payments.models import (
    AttemptStatus,
    ChargeAttempt,
    Dispute,
    DisputeStatus,
    LedgerEntry,
    LedgerKind,
)
from payments.services import ledger_line_totals
from storefront.models import ORDER_TRANSITIONS, Order, OrderLine, OrderStatus

logger = logging.getLogger(__name__)


class IllegalTransition(Exception):
    pass


def _allowed_from(to: str) -> list[str]:
    return [s for s, targets in ORDER_TRANSITIONS.items() if to in targets]


def order_status_move(*, order: Order, to: str, **extra) -> bool:
    """Move an order's status with one conditional UPDATE; False if another writer got there
    first or the move is not allowed from where the order stands."""
    allowed_from = _allowed_from(to)
    if not allowed_from:
        raise IllegalTransition(f"nothing moves to {to}")
    updated = Order.objects.filter(pk=order.pk, status__in=allowed_from).update(status=to, **extra)
    if updated:
        order.status = to
        for key, value in extra.items():
            setattr(order, key, value)
        if order.coupon_code:
            _coupon_follows_status(order=order, to=to)
    return bool(updated)


def _coupon_follows_status(*, order: Order, to: str) -> None:
    """A failed order gives its coupon use back; a payment that succeeds after the order was
    marked failed takes it again (offers.coupons). Same transaction as the move."""
    from offers.coupons import coupon_rehold, coupon_release

    if to == OrderStatus.FAILED:
        coupon_release(order_id=order.pk)
    elif to == OrderStatus.PAID:
        coupon_rehold(order_id=order.pk)


def event_fields_for(order: Order) -> dict:
    return {
        "order_id": order.pk,
        "customer_id": order.customer_id,
        "visitor_id": order.visitor_id,
        "source": order.utm_source,
        "medium": order.utm_medium,
        "campaign": order.utm_campaign,
        "variant": order.variant,
        "currency": order.currency,
    }


def post_purchase_line_create(*, order: Order, kind: str, offer, frozen, currency: str) -> bool:
    """Add the line for a one-click charge that succeeded (upsell, downsell, cross-sell), at
    the price and tax the buyer was shown: `frozen` is the row that holds them (the
    OfferDecision or FollowUpSend). False when the database refuses the line (the order
    already has its post-purchase line); the ledger has the charge either way. Runs inside
    the payment's recording transaction, so it never raises for that."""
    try:
        with transaction.atomic():
            line = OrderLine.objects.create(
                order=order,
                kind=kind,
                product_id=offer.product_id,
                offer_id=offer.pk,
                description=offer.product.name,
                net_amount=frozen.net_amount,
                tax_amount=frozen.tax_amount,
                total_amount=frozen.total_amount,
                currency=currency,
                tax_rate=frozen.tax_rate,
                tax_inclusive=bool(frozen.tax_inclusive),
                tax_country=order.country,
                tax_region=order.region,
                reverse_charge=order.reverse_charge,
            )
    except IntegrityError:
        return False
    from storefront.services.subscribe import subscriptions_start_for_lines

    subscriptions_start_for_lines(order=order, lines=[line])  # a subscription sold as an offer
    return True


def on_attempt_outcome(attempt: ChargeAttempt) -> None:
    """Registered with payments at start-up; runs inside the transaction recording the outcome."""
    parsed = orderkeys.order_purpose_parse(attempt.purpose)
    if parsed is None:
        return
    order_id, what = parsed
    # Its invoice and the lines' license keys, after commit (never in the money path).
    documents = ("storefront.order_documents", {"order_id": order_id})
    if what == "primary" and attempt.status == AttemptStatus.SUCCEEDED:
        # The usual case in one statement: the move to PAID returns the order, locked, with
        # its lines. They are read as the statement began, which is all of them: lines are
        # written at checkout, and a post-purchase line only once its own charge succeeded,
        # which waits behind this primary's success (not committed until this transaction).
        moved = update_returning_with_related(
            Order,
            assignments='"status" = %s, "paid_at" = %s',
            where='"id" = %s AND "status" = ANY(%s)',
            params=[OrderStatus.PAID, timezone.now(), order_id, _allowed_from(OrderStatus.PAID)],
            related=OrderLine,
            fk="order_id",
        )
        if moved:
            order, order_lines = moved[0]
            if order.coupon_code:
                _coupon_follows_status(order=order, to=OrderStatus.PAID)
            _paid_effects(
                order,
                amount=attempt.amount,
                lines=len(attempt.allocation),
                documents=documents,
                properties={},
                order_lines=order_lines,
            )
            return
    from storefront.services import upsell
    from storefront.services.upsell.gate import outcome_decision

    decision = None
    if what in upsell.POST_PURCHASE:  # the order locked by the read of the offer's decision
        decision = outcome_decision(attempt=attempt, order_id=order_id)
    order = decision.order if decision else Order.objects.select_for_update().get(pk=order_id)
    if what == "primary":
        _primary_outcome(order, attempt, documents)
        return
    if attempt.status == AttemptStatus.SUCCEEDED:
        # A one-click charge: its documents, then its own receipt with its invoice.
        enqueue_many([documents, ("storefront.send_charge_receipt", {"attempt_id": attempt.pk})])
    if what == "cross_sell":  # a follow-up email's one-click accept
        from storefront.services import followups

        followups.on_cross_sell_outcome(order=order, attempt=attempt)
    else:
        upsell.on_post_purchase_outcome(order=order, attempt=attempt, what=what, decision=decision)


def order_paid(
    *, order: Order, amount: int, lines: int, documents: tuple | None = None, **properties
) -> bool:
    """The order is settled (inside the caller's transaction, the order's row locked): paid by
    its primary charge, or a free trial's card-only checkout with nothing to pay today
    (amount 0; storefront.services.free_trial). Once: False if it was paid already."""
    if not order_status_move(order=order, to=OrderStatus.PAID, paid_at=timezone.now()):
        return False
    _paid_effects(order, amount=amount, lines=lines, documents=documents, properties=properties)
    return True


def _primary_outcome(order: Order, attempt: ChargeAttempt, documents: tuple) -> None:
    if attempt.status == AttemptStatus.SUCCEEDED:
        paid = order_paid(
            order=order, amount=attempt.amount, lines=len(attempt.allocation), documents=documents
        )
        if not paid:
            enqueue(documents[0], **documents[1])
    elif attempt.status in (AttemptStatus.DECLINED, AttemptStatus.CANCELED):
        if order_status_move(order=order, to=OrderStatus.FAILED):
            event_append(
                EventName.CHECKOUT_FAILED,
                reason=attempt.decline_code or "declined",
                **event_fields_for(order),
            )
            enqueue("storefront.release_gated_offers", order_id=order.pk)


def _paid_effects(
    order: Order,
    *,
    amount: int,
    lines: int,
    documents: tuple | None,
    properties: dict,
    order_lines: list[OrderLine] | None = None,
) -> None:
    """The order has just moved to PAID (in the recording transaction, the order locked).
    `order_lines`: its lines, when the caller read them with the move."""
    event_append(
        EventName.CHECKOUT_COMPLETED,
        amount=amount,
        properties={"lines": lines, **properties},
        **event_fields_for(order),
    )
    # The documents (not for a free trial's order: nothing was charged), the receipt and the
    # release of anything waiting behind the settlement gate: one outbox INSERT, after commit.
    enqueue_many(
        [
            *([documents] if documents else []),
            ("storefront.send_receipt", {"order_id": order.pk}),
            ("storefront.release_gated_offers", {"order_id": order.pk}),
        ]
    )
    from storefront.services import followups
    from storefront.services.subscribe import subscriptions_start_for_lines

    if order_lines is None:
        order_lines = list(order.lines.all())  # read once for both
    subscriptions_start_for_lines(order=order, lines=order_lines)
    followups.followups_schedule(order=order, paid_at=order.paid_at, lines=order_lines)
    # Reminders for what this order bought are skipped when they fall due
    # (recovery_skip_reason): no extra statement on the payment's path.


def on_ledger_entry(entry: LedgerEntry) -> None:
    """A refund, chargeback or reinstatement landed: re-derive the order's status from the
    ledger."""
    order_id = orderkeys.order_reference_parse(entry.reference)
    if order_id is None:
        return
    order = Order.objects.select_for_update().filter(pk=order_id).first()
    if order is None:
        return
    order_status_sync_from_ledger(order=order)
    fields = event_fields_for(order)
    if entry.kind == LedgerKind.REFUND:
        enqueue("storefront.credit_note_issue", refund_ref=entry.gateway_ref)
        event_append(
            EventName.REFUND_ISSUED,
            amount=entry.amount,
            properties={"line": entry.line_key},
            **fields,
        )
    elif entry.kind == LedgerKind.CHARGEBACK:  # the funds were withdrawn for a dispute
        event_append(
            EventName.CHARGEBACK_OPENED,
            amount=entry.amount,
            properties={"line": entry.line_key},
            **fields,
        )


def on_dispute_closed(dispute: Dispute) -> None:
    """A dispute first seen won or lost (payments.disputes calls this once per dispute, in the
    transaction that moved its row to the final status): the outcome's event, like
    `chargeback_opened`, for an order's dispute."""
    order_id = orderkeys.order_reference_parse(dispute.reference)
    order = Order.objects.filter(pk=order_id).first() if order_id is not None else None
    if order is None:
        return
    won = dispute.status == DisputeStatus.WON
    event_append(
        EventName.DISPUTE_WON if won else EventName.DISPUTE_LOST,
        amount=dispute.amount,
        reason=dispute.reason,
        properties={"dispute": dispute.gateway_ref, "lines": sorted(dispute.lines)},
        **event_fields_for(order),
    )


def order_status_sync_from_ledger(*, order: Order) -> None:
    """Paid / partially refunded / refunded is derived from the ledger, never set by hand.
    Chargebacks count net of won disputes (ledger_line_totals)."""
    totals = ledger_line_totals(reference=order.reference)
    charged = sum(t[LedgerKind.CHARGE] for t in totals.values())
    returned = sum(t[LedgerKind.REFUND] + t[LedgerKind.CHARGEBACK] for t in totals.values())
    if charged == 0:
        return
    if returned == 0:
        target = OrderStatus.PAID
    elif returned >= charged:
        target = OrderStatus.REFUNDED
    else:
        target = OrderStatus.PARTIALLY_REFUNDED
    if target == order.status:
        return
    if target != OrderStatus.PAID and order_status_move(order=order, to=target):
        return
    # Less returned than the status says: a won dispute gave its chargeback back. Not a move
    # in ORDER_TRANSITIONS (nothing else may take an order back to paid); only the ledger
    # handler makes it, in the transaction recording the reinstatement.
    returned_statuses = {OrderStatus.REFUNDED: 2, OrderStatus.PARTIALLY_REFUNDED: 1}
    rank = {**returned_statuses, OrderStatus.PAID: 0}
    reinstated = any(t[LedgerKind.REINSTATED] for t in totals.values())
    if reinstated and order.status in returned_statuses and rank[target] < rank[order.status]:
        if Order.objects.filter(pk=order.pk, status=order.status).update(status=target):
            order.status = target
