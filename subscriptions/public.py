"""The public shape of a subscription (partner API and outbound webhooks share it) and the
webhooks `subscription.created`, `.renewed`, `.past_due` and `.canceled`."""

from __future__ import annotations

from typing import Any

from analytics.services import notice_publish
from subscriptions.models import Subscription

EVENTS = (
    "subscription.created",
    "subscription.renewed",
    "subscription.past_due",
    "subscription.canceled",
)


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def subscription_public(sub: Subscription) -> dict[str, Any]:
    return {
        "id": sub.pk,
        "customer_id": sub.customer_id,
        "product_id": sub.product_id,
        "order_id": sub.order_id,
        "kind": sub.kind,
        "status": sub.status,
        "interval": {"unit": sub.interval_unit, "count": sub.interval_count},
        "instalments": sub.instalments,
        "amount": sub.amount,
        "currency": sub.currency,
        "trial_ends_at": _iso(sub.trial_ends_at),
        "next_charge_at": _iso(sub.next_charge_at),
        "paid_through": _iso(sub.paid_through),
        "cancel_at_period_end": sub.cancel_at_period_end,
        "ended_at": _iso(sub.ended_at),
        "end_reason": sub.end_reason,
        "created_at": _iso(sub.created_at),
    }


def webhook_notice(*, sub: Subscription, event_type: str, key: str = "") -> dict[str, Any]:
    """The notice a change publishes (analytics.services.notice_deliver's arguments)."""
    if event_type not in EVENTS:
        raise ValueError(event_type)
    return {
        "name": event_type,
        "payload": subscription_public(sub),
        "key": f"{event_type}:{sub.pk}:{key or sub.status}",
    }


def publish(*, sub: Subscription, event_type: str, key: str = "") -> None:
    """Inside the transaction that made the change, once per change (`key` tells repeated
    kinds apart, e.g. the renewed period): partners derive the event id from it."""
    notice = webhook_notice(sub=sub, event_type=event_type, key=key)
    notice_publish(notice["name"], notice["payload"], key=notice["key"])
