"""Appending to the event log: the one function every app calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connection, transaction
from django_tenants.utils import schema_context

from analytics.models import Event, EventName
from core.tasks import enqueue

# Apps above analytics (partners' webhooks) register here at start-up, so analytics imports
# none of them. A listener gets the (event name, payload) pairs of a transaction once it
# commits, all at once (one check of its own per transaction, not one per event).
EventListener = Callable[[list[tuple[str, dict[str, Any]]]], None]
_listeners: list[EventListener] = []


def event_listener_register(fn: EventListener) -> None:
    if fn not in _listeners:
        _listeners.append(fn)


# Changes that are not funnel events (a payout account's state, a transfer) reach listeners too,
# without a row in the event log: a notice carries a key naming the change, stable across
# repeats of it (partners derives the webhook's event id from it, so a change reported twice is
# delivered once). A notice is an outbox task, committed with the change it reports: a process
# killed right after the commit still gets it delivered (by the outbox drainer).
NoticeListener = Callable[[str, dict[str, Any], str], None]
_notice_listeners: list[NoticeListener] = []
NOTICE_TASK = "analytics.notice_dispatch"


def notice_listener_register(fn: NoticeListener) -> None:
    if fn not in _notice_listeners:
        _notice_listeners.append(fn)


def notice_publish(name: str, payload: dict[str, Any], *, key: str) -> None:
    """Queue a notice of `name` (JSON `payload`) in the current transaction: call it inside the
    transaction that recorded the change, once per change; `key` names the change."""
    enqueue(NOTICE_TASK, name=name, payload=payload, key=key)


def notice_deliver(*, name: str, payload: dict[str, Any], key: str) -> None:
    """The queued notice's task: hand it to every listener (in the current store's schema).
    Safe to run more than once: listeners dedupe on `key`."""
    for fn in list(_notice_listeners):
        fn(name, payload, key)


def event_payload(event: Event) -> dict[str, Any]:
    """The public shape of an event (the partner API and webhooks share it)."""
    return {
        "id": event.pk,
        "name": event.name,
        "occurred_at": event.occurred_at.isoformat(),
        "order_id": event.order_id,
        "customer_id": event.customer_id,
        "offer_id": event.offer_id,
        "product_id": event.product_id,
        "variant": event.variant,
        "source": event.source,
        "medium": event.medium,
        "campaign": event.campaign,
        "amount": event.amount,
        "currency": event.currency,
        "reason": event.reason,
    }


def _notify(schema: str, events: list[tuple[str, dict[str, Any]]]) -> None:
    with schema_context(schema):
        for fn in list(_listeners):
            fn(events)


def _notify_on_commit(events: list[Event]) -> None:
    if _listeners and events:
        schema = connection.schema_name
        batch = [(str(event.name), event_payload(event)) for event in events]
        transaction.on_commit(lambda: _notify(schema, batch), robust=True)


def event_append(name: EventName | str, **fields: Any) -> Event:
    """Append one event. Call it inside the transaction that made the change it records."""
    [event] = events_append([(name, fields)])
    return event


def events_append(events: list[tuple[EventName | str, dict[str, Any]]]) -> list[Event]:
    """Append several events with one INSERT (in order); listeners get them together."""
    for name, _ in events:
        if name not in EventName.values:
            raise ValueError(f"unknown event {name!r}")
    if len(events) == 1:
        created = [Event.objects.create(name=events[0][0], **events[0][1])]
    else:
        created = Event.objects.bulk_create([Event(name=n, **f) for n, f in events])
    _notify_on_commit(created)
    return created
