"""Routing at speed must never route wrong: cached hosts, lazy search_path, connection reuse."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import connection, transaction
from django_tenants.utils import schema_context, tenant_context

from storefront.models import Product
from tenants.models import Creator, Domain
from tenants.routing import routing_cache
from tenants.services import creator_create


def _product(name: str) -> Product:
    return Product.objects.create(
        slug=name.lower().replace(" ", "-"),
        name=name,
        price_amount=1000,
        status=Product.Status.ACTIVE,
    )


def _other_process_sql(sql: str, params=()) -> None:
    """Run and commit SQL on a connection of its own, as another server process would."""
    db = connection.settings_dict
    with psycopg.connect(
        dbname=db["NAME"],
        user=db["USER"],
        host=db["HOST"] or None,
        port=db["PORT"] or None,
        password=db["PASSWORD"] or None,
        autocommit=True,
    ) as conn:
        conn.execute(sql, params)


def _server_search_path() -> str:
    """What the server really has, asked without going through the backend's bookkeeping."""
    with connection.connection.cursor() as cursor:
        cursor.execute("SHOW search_path")
        return cursor.fetchone()[0]


def _sets_during(fn) -> list[str]:
    seen: list[str] = []

    def spy(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("SET SEARCH_PATH"):
            seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        fn()
    return seen


@pytest.fixture
def committed(django_db_setup, django_db_blocker):
    """Committed products in t1 ("Alpha") and t2 ("Beta"), a movable host; all undone after."""
    from tests.conftest import truncate_tenant_tables

    with django_db_blocker.unblock():
        t1, t2 = Creator.objects.get(slug="t1"), Creator.objects.get(slug="t2")
        with tenant_context(t1):
            _product("Alpha")
        with tenant_context(t2):
            _product("Beta")
        connection.set_schema_to_public()
        Domain.objects.create(domain="moving.localhost", tenant=t1, is_primary=False)
        assert routing_cache.wait_listening(), "the routing listener never connected"
        try:
            yield t1, t2
        finally:
            connection.set_schema_to_public()
            Domain.objects.filter(domain="moving.localhost").delete()
            for creator in Creator.objects.filter(slug__startswith="doomed"):
                creator.delete(force_drop=True)
            truncate_tenant_tables(t1.schema_name)
            truncate_tenant_tables(t2.schema_name)
            connection.set_schema_to_public()


def _page(client_for, host: str):
    response = client_for(host).get("/")
    return response.status_code, response.content.decode()


def _served_from_cache(client_for, host: str) -> bool:
    """Request until the host sits in the cache (a late notification from an earlier change
    may empty it once); False if it never does."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        _page(client_for, host)
        if host in routing_cache._entries:
            return True
        time.sleep(0.01)
    return False


def test_a_domain_repointed_to_another_creator_serves_that_creator_on_the_next_request(
    committed, client_for
):
    t1, t2 = committed
    status, page = _page(client_for, "moving.localhost")
    assert status == 200 and "Alpha" in page and "Beta" not in page
    assert _served_from_cache(client_for, "moving.localhost")

    Domain.objects.filter(domain="moving.localhost").update(tenant=t2)  # no model signal
    domain = Domain.objects.get(domain="moving.localhost")
    domain.tenant = t2
    domain.save()

    status, page = _page(client_for, "moving.localhost")
    assert status == 200 and "Beta" in page and "Alpha" not in page


def test_a_domain_repointed_by_another_process_stops_resolving_to_the_old_creator(
    committed, client_for
):
    t1, t2 = committed
    assert "Alpha" in _page(client_for, "moving.localhost")[1]
    assert _served_from_cache(client_for, "moving.localhost")

    _other_process_sql(
        "UPDATE tenants_domain SET tenant_id = %s WHERE domain = 'moving.localhost'", [t2.pk]
    )
    deadline = time.monotonic() + 2
    while "moving.localhost" in routing_cache._entries and time.monotonic() < deadline:
        time.sleep(0.005)
    pages = [_page(client_for, "moving.localhost")[1] for _ in range(3)]
    assert all("Beta" in p and "Alpha" not in p for p in pages)


def test_a_deleted_creator_stops_resolving_at_once(committed, client_for):
    creator_create(
        slug="doomed-a",
        display_name="Doomed",
        domain="doomed-a.localhost",
        owner_email="d@example.com",
        password="pw-123456",
    )
    assert _page(client_for, "doomed-a.localhost")[0] == 200
    assert _served_from_cache(client_for, "doomed-a.localhost")

    connection.set_schema_to_public()
    Creator.objects.get(slug="doomed-a").delete(force_drop=True)

    assert _page(client_for, "doomed-a.localhost")[0] == 404


def test_a_creator_deleted_by_another_process_stops_resolving(committed, client_for):
    creator = creator_create(
        slug="doomed-b",
        display_name="Doomed",
        domain="doomed-b.localhost",
        owner_email="d@example.com",
        password="pw-123456",
    ).creator
    assert _page(client_for, "doomed-b.localhost")[0] == 200
    assert _served_from_cache(client_for, "doomed-b.localhost")

    _other_process_sql("DELETE FROM tenants_domain WHERE tenant_id = %s", [creator.pk])
    deadline = time.monotonic() + 2
    while "doomed-b.localhost" in routing_cache._entries and time.monotonic() < deadline:
        time.sleep(0.005)
    assert _page(client_for, "doomed-b.localhost")[0] == 404


def test_a_reopened_connection_is_put_back_in_the_requested_schema(committed, client_for):
    assert "Alpha" in _page(client_for, "t1.localhost")[1]
    connection.close()  # the next connection starts with the server's default search_path
    status, page = _page(client_for, "t1.localhost")
    assert status == 200 and "Alpha" in page and "Beta" not in page
    assert _server_search_path() == "t1, public"


def test_nothing_is_cached_while_the_listener_is_down(committed, client_for):
    t1, t2 = committed
    routing_cache.stop()
    try:
        assert "Alpha" in _page(client_for, "moving.localhost")[1]
        assert len(routing_cache) == 0
        # Without a listener a change by another process must still be seen at once.
        _other_process_sql(
            "UPDATE tenants_domain SET tenant_id = %s WHERE domain = 'moving.localhost'",
            [t2.pk],
        )
        assert "Beta" in _page(client_for, "moving.localhost")[1]
    finally:
        assert routing_cache.wait_listening()


def test_a_connection_reused_across_tenants_always_queries_the_requested_schema(
    tenant, other_tenant, client_for
):
    _product("Alpha")
    with tenant_context(other_tenant):
        _product("Beta")

    for host, mine, theirs, path in [
        ("t1.localhost", "Alpha", "Beta", "t1, public"),
        ("t2.localhost", "Beta", "Alpha", "t2, public"),
        ("t2.localhost", "Beta", "Alpha", "t2, public"),
        ("t1.localhost", "Alpha", "Beta", "t1, public"),
        # The platform's landing page makes no query (it lists no creators): the lazy
        # backend sends no SET, and the next store's page must still land in its own schema.
        ("localhost", "Creator storefronts", "Alpha", "t1, public"),
        ("t2.localhost", "Beta", "Alpha", "t2, public"),
    ]:
        status, page = _page(client_for, host)
        assert status == 200 and mine in page and theirs not in page, host
        assert _server_search_path() == path

    # A SET made inside a rolled-back savepoint is undone by PostgreSQL (the server is back in
    # t2); the backend must not go on believing the connection is in t1.
    with pytest.raises(RuntimeError), transaction.atomic():
        connection.set_tenant(Creator.objects.get(slug="t1"))
        assert Product.objects.filter(name="Alpha").exists()
        raise RuntimeError("roll back")
    assert connection.schema_name == "t1" and _server_search_path() == "t1, public"
    status, page = _page(client_for, "t1.localhost")
    assert "Alpha" in page and "Beta" not in page

    # schema_context in between requests, then a request for the other tenant.
    with schema_context("t2"):
        assert list(Product.objects.values_list("name", flat=True)) == ["Beta"]
    status, page = _page(client_for, "t1.localhost")
    assert "Alpha" in page and "Beta" not in page


def test_set_search_path_is_sent_once_when_the_schema_changes_and_never_when_it_does_not(
    tenant, client_for
):
    # Warm: both hosts cached, connection in t1. Run alone, this test's first request starts
    # the routing listener, and nothing is cached until it listens.
    _page(client_for, "t1.localhost")
    assert routing_cache.wait_listening()
    assert _served_from_cache(client_for, "t2.localhost")
    assert _served_from_cache(client_for, "t1.localhost")
    domain_lookups: list[str] = []

    def count_lookups(execute, sql, params, many, context):
        if "tenants_domain" in sql:
            domain_lookups.append(sql)
        return execute(sql, params, many, context)

    counts = []
    with connection.execute_wrapper(count_lookups):
        for host in [
            "t1.localhost",
            "t1.localhost",
            "t2.localhost",
            "t2.localhost",
            "t1.localhost",
            "t2.localhost",
        ]:
            counts.append(len(_sets_during(lambda h=host: _page(client_for, h))))
    assert counts == [0, 0, 1, 0, 1, 1]
    assert domain_lookups == []  # every one of those requests was routed from the cache


def test_a_domain_added_in_a_rolled_back_transaction_does_not_stay_routable(tenant, client_for):
    with pytest.raises(RuntimeError), transaction.atomic():
        connection.set_schema_to_public()
        Domain.objects.create(
            domain="ghost.localhost", tenant=Creator.objects.get(slug="t1"), is_primary=False
        )
        assert _page(client_for, "ghost.localhost")[0] == 200
        raise RuntimeError("roll back")
    assert _page(client_for, "ghost.localhost")[0] == 404


def test_an_unknown_host_gets_404_and_leaves_the_connection_in_public(tenant, client_for):
    assert _page(client_for, "t1.localhost")[0] == 200
    assert _page(client_for, "nobody.localhost")[0] == 404
    assert connection.schema_name == "public"
