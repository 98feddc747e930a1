"""Cold stores and memory: connections retire after N schemas; a worker warms up before its
first request (tenants/backend/base.py, config/warm.py)."""

from __future__ import annotations

import threading

import pytest
from django.db import close_old_connections, connection
from django.template import engines
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from storefront.models import Product
from tenants.routing import routing_cache


def _backend_pid() -> int:
    with connection.connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


@pytest.fixture
def outside_a_transaction(django_db_setup, django_db_blocker, monkeypatch):
    """Committed-data tests (request-end handling only runs outside a transaction), with
    persistent connections as in production (the test settings close them every request)."""
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", None)
    with django_db_blocker.unblock():
        connection.close()
        yield
        connection.set_schema_to_public()
        connection.close()


def _touch(schema: str) -> None:
    with schema_context(schema):
        Product.objects.count()


def test_a_connection_that_served_the_set_number_of_schemas_is_closed_at_request_end(
    outside_a_transaction, settings, client_for
):
    settings.TENANT_SCHEMAS_PER_CONNECTION = 2
    settings.TENANT_CONNECTION_WARM = ""
    _touch("t1")
    first = _backend_pid()
    close_old_connections()  # what Django does at the end of every request
    assert connection.connection is not None and _backend_pid() == first
    _touch("t1")
    close_old_connections()
    assert connection.connection is not None, "the same schema again is not a new one"

    _touch("t2")
    assert connection.schemas_served == {"t1", "t2"}
    close_old_connections()
    assert connection.connection is None, "two schemas served: the connection must retire"

    response = client_for("t1.localhost").get("/")
    assert response.status_code == 200
    assert _backend_pid() != first
    assert connection.schemas_served == {"t1"}
    with connection.connection.cursor() as cursor:
        cursor.execute("SHOW search_path")
        assert cursor.fetchone()[0] == "t1, public"


def test_a_retired_connection_is_replaced_and_warmed_at_once(outside_a_transaction, settings):
    settings.TENANT_SCHEMAS_PER_CONNECTION = 2
    settings.TENANT_CONNECTION_WARM = "config.warm.warm_connection"
    _touch("t1")
    _touch("t2")
    first = _backend_pid()
    close_old_connections()
    assert connection.connection is not None, "the replacement is opened right away"
    assert _backend_pid() != first
    assert connection.schemas_served == {"_tenant_template"}
    assert connection.schema_name == "public"


def test_the_shipped_bound_is_one_measured_to_keep_a_backend_under_300_mb():
    # bench/README.md "Backend memory by stores per connection", 10,000 stores: a backend's
    # RSS 191-207 MB with 100 stores per connection, 319 MB with 200, 472 MB with 500.
    from django.conf import settings as django_settings

    assert 0 < django_settings.TENANT_SCHEMAS_PER_CONNECTION <= 100
    assert connection.schemas_per_connection == django_settings.TENANT_SCHEMAS_PER_CONNECTION


def test_no_bound_keeps_the_connection(outside_a_transaction, settings):
    settings.TENANT_SCHEMAS_PER_CONNECTION = 0
    _touch("t1")
    _touch("t2")
    pid = _backend_pid()
    close_old_connections()
    assert connection.connection is not None and _backend_pid() == pid


def test_warm_up_reads_every_host_and_compiles_the_buyer_pages(outside_a_transaction, client_for):
    from config.warm import BUYER_TEMPLATES, warm

    assert routing_cache.wait_listening()
    routing_cache.invalidate()
    done = warm()
    assert done["hosts"] >= 2
    assert {"t1.localhost", "t2.localhost"} <= set(routing_cache._entries)
    assert connection.connection is None, "the warming thread's connection is given back"
    loader = engines["django"].engine.template_loaders[0]
    assert set(BUYER_TEMPLATES) <= set(loader.get_template_cache)

    with CaptureQueriesContext(connection) as queries:
        response = client_for("t1.localhost").get("/")
    assert response.status_code == 200
    assert not [q for q in queries if "tenants_domain" in q["sql"]], "host looked up again"


def test_warm_up_caches_nothing_when_a_change_arrives_meanwhile(outside_a_transaction, monkeypatch):
    from tenants import routing

    assert routing_cache.wait_listening()
    routing_cache.invalidate()
    real = routing._routing_rows

    def rows_then_a_change(sql, params):
        found = real(sql, params)
        routing_cache.invalidate()  # a NOTIFY landing while the table was read
        return found

    monkeypatch.setattr(routing, "_routing_rows", rows_then_a_change)
    assert routing.routing_preload() == 0
    assert len(routing_cache) == 0


def test_each_request_thread_warms_its_own_connection_once(monkeypatch, settings):
    from concurrent.futures import ThreadPoolExecutor

    import config.warm

    settings.WEB_WARM_ON_START = True
    threads: list[int] = []
    monkeypatch.setattr(
        config.warm, "warm_connection", lambda: threads.append(threading.get_ident())
    )
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert config.warm.warm_threads(pool, 4) == 4
    assert len(set(threads)) == 4, "a thread warmed twice and another not at all"

    settings.WEB_WARM_THREADS = 2
    threads.clear()
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert config.warm.warm_threads(pool, 4) == 2
    assert len(set(threads)) == 2

    settings.WEB_WARM_ON_START = False
    threads.clear()
    with ThreadPoolExecutor(max_workers=2) as pool:
        assert config.warm.warm_threads(pool, 2) == 0
    assert threads == []


def test_a_warmed_connection_has_read_the_page_tables_and_is_back_in_public(
    outside_a_transaction,
):
    from config.warm import warm_connection

    with CaptureQueriesContext(connection) as queries:
        warm_connection()
    tables = " ".join(q["sql"] for q in queries)
    for table in ("storefront_storesettings", "storefront_storebrand", "storefront_product"):
        assert table in tables
    assert any("_tenant_template" in q["sql"] for q in queries)
    assert connection.schema_name == "public"
