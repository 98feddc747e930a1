"""Appending to the event log: the one function every app calls."""
from __future__ import annotations

from typing import Any

from analytics.models import Event, EventName


def event_append(name: EventName | str, **fields: Any) -> Event:
    """Append one event. Call it inside the transaction that made the change it records."""
    if name not in EventName.values:
        raise ValueError(f"unknown event {name!r}")
    return Event.objects.create(name=name, **fields)
