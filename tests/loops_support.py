"""The store admin's "Needs attention" list (audit/admin.py LoopFailureAdmin), fetched as
a store's owner."""

from __future__ import annotations

from django.db import connection
from django.test import Client


def owner_client(store) -> Client:
    """A client logged in as `store`'s owner: the login happens in the store's schema (users
    and sessions live there); the connection's tenant is put back afterwards."""
    previous = connection.tenant
    connection.set_tenant(store)
    try:
        client = Client(HTTP_HOST=f"{store.schema_name}.localhost")
        assert client.login(username="owner", password="owner-pass-123")
        return client
    finally:
        connection.set_tenant(previous)


def needs_attention_page(store, path: str = "/admin/core/loopfailure/") -> str:
    """The page's HTML (the list by default) as `store`'s owner sees it."""
    previous = connection.tenant
    try:
        page = owner_client(store).get(path)
        assert page.status_code == 200, page
        return page.content.decode()
    finally:
        connection.set_tenant(previous)


def failing_for(real, *, keyword: str, bad, what: str = "a record this loop cannot read"):
    """`real`, except that a call with `keyword` == `bad` raises: one bad record for a loop."""

    def call(**kwargs):
        if kwargs[keyword] == bad:
            raise RuntimeError(what)
        return real(**kwargs)

    return call
