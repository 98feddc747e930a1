"""The store admin's "Needs attention" list (core/admin.py), fetched as a store's owner."""
from __future__ import annotations

from django.db import connection
from django.test import Client


def needs_attention_page(store, path: str = "/admin/core/loopfailure/") -> str:
    """Log in as `store`'s owner (in its schema: sessions and users live there) and return
    the page's HTML (the list by default); the connection's tenant is put back afterwards."""
    previous = connection.tenant
    connection.set_tenant(store)
    try:
        client = Client(HTTP_HOST=f"{store.schema_name}.localhost")
        assert client.login(username="owner", password="owner-pass-123")
        page = client.get(path)
        assert page.status_code == 200, page
        return page.content.decode()
    finally:
        connection.set_tenant(previous)
