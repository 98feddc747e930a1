"""The store owner's admin session on t1 (a real login, a known address and browser), and
what every audit row written from the admin must carry."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.models import AuditEntry

OWNER_ADDRESS = "198.51.100.77"
OWNER_AGENT = "Mozilla/5.0 (creator's laptop)"


@pytest.fixture
def owner_client(tenant) -> Client:
    client = Client(
        HTTP_HOST="t1.localhost", REMOTE_ADDR=OWNER_ADDRESS, HTTP_USER_AGENT=OWNER_AGENT
    )
    assert client.login(username="owner", password="owner-pass-123")
    return client


def audited(action: str, *, object_id=None) -> AuditEntry:
    """The one audit row for `action` (on `object_id`), checked for who, when and where."""
    rows = AuditEntry.objects.filter(action=action)
    if object_id is not None:
        rows = rows.filter(object_id=str(object_id))
    entries = list(rows)
    assert len(entries) == 1, (action, [(e.action, e.object_id) for e in AuditEntry.objects.all()])
    entry = entries[0]
    assert (entry.actor_kind, entry.actor_label) == ("user", "owner")
    assert entry.ip_address == OWNER_ADDRESS and entry.user_agent == OWNER_AGENT
    assert entry.occurred_at is not None
    return entry


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []
