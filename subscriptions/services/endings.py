"""How a subscription ends because of money taken back: a refund of what paid for it, or a
dispute lost. payments calls these inside the transaction that records the change (the ledger
handler and the dispute handler, registered in subscriptions.apps)."""

from __future__ import annotations

from django.utils import timezone

from core import orderkeys
from payments.models import Dispute, LedgerEntry, LedgerKind
from subscriptions.models import Subscription, SubscriptionStatus
from subscriptions.services.billing import subscription_status_move


def on_ledger_entry(entry: LedgerEntry) -> None:
    """A refund of a subscription's payment ends it and its access: a renewal's ("sub:<id>")
    or the order line that started it. A dispute ends it only when lost (on_dispute_closed):
    while one is open the withdrawn funds suspend the line's access (storefront delivery)
    and a win gives them back."""
    if entry.kind != LedgerKind.REFUND:
        return
    _end_for(entry.reference, [entry.line_key], reason="refunded")


def on_dispute_closed(dispute: Dispute) -> None:
    """Dispute handler (payments.disputes): a lost dispute cancels the subscription it paid
    for, in the transaction that records the loss; a won one changes nothing."""
    if dispute.status != "lost":
        return
    _end_for(dispute.reference, list(dispute.lines), reason="chargeback")


def _end_for(reference: str, line_keys: list[str], *, reason: str) -> None:
    sub_id = orderkeys.subscription_reference_parse(reference)
    if sub_id is not None:
        subs = Subscription.objects.filter(pk=sub_id)
    else:
        order_id = orderkeys.order_reference_parse(reference)
        if order_id is None:
            return
        subs = Subscription.objects.filter(order_id=order_id, line_key__in=line_keys)
    for sub in subs.select_for_update():
        subscription_status_move(
            sub=sub,
            to=SubscriptionStatus.CANCELED,
            ended_at=timezone.now(),
            next_charge_at=None,
            end_reason=reason,
        )
