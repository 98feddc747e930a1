"""The partner API's list and retrieve endpoints on a real streaming replica (api/reads.py).

The standby is tests/conftest.py's `standby` (a hot standby of the suite's server, shared with
tests/analytics/test_replica.py); `replica_alias` points the `replica` alias at the test
database on it. Where a read ran is told by the SQL each connection sent: the replica's
connection talks to the standby's port only.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.db import DEFAULT_DB_ALIAS, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework import mixins

from analytics.models import Event, Experiment
from api.reads import ReplicaReads
from config.api_urls import router
from core import replica
from offers.models import Coupon, Offer
from partners.models import ApiKey
from partners.services import api_key_create
from payments.models import TransferAttempt
from storefront.models import Customer, Order, PrivacyRequest, Product
from subscriptions.models import Subscription
from tests.factories import ProductFactory
from tests.replica_support import replica_fails_at

HOST = "t1.localhost"
LISTS = {
    "products": Product,
    "offers": Offer,
    "coupons": Coupon,
    "customers": Customer,
    "orders": Order,
    "events": Event,
    "experiments": Experiment,
    "transfers": TransferAttempt,
    "subscriptions": Subscription,
    "privacy-requests": PrivacyRequest,
}


def test_every_list_and_retrieve_endpoint_of_the_api_reads_through_replica_reads():
    """A viewset added later with DRF's list or retrieve gets the routing too."""
    readable = [
        viewset
        for _, viewset, _ in router.registry
        if issubclass(viewset, (mixins.ListModelMixin, mixins.RetrieveModelMixin))
    ]
    assert {v.__name__ for v in readable} >= {"OrderViewSet", "EventViewSet", "OfferViewSet"}
    for viewset in readable:
        assert issubclass(viewset, ReplicaReads), viewset
        for name in ("list", "retrieve"):
            assert getattr(viewset, name) is getattr(ReplicaReads, name), (viewset, name)


# --- over the standby ---------------------------------------------------------------------


def _tables_read(captured, table: str) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if f'"{table}"' in q["sql"]]


@pytest.fixture
def keys(live_partners):
    return {
        "read": api_key_create(name="reader", scope=ApiKey.Scope.READ).token,
        "write": api_key_create(name="partner", scope=ApiKey.Scope.WRITE).token,
    }


def _api(token: str) -> Client:
    return Client(HTTP_HOST=HOST, HTTP_AUTHORIZATION=f"Bearer {token}")


def _get_where(path: str, token: str, table: str) -> tuple[object, list[str], list[str]]:
    """GET `path`; the SQL on `table` each side ran for it (replica, primary)."""
    with (
        CaptureQueriesContext(connections[replica.REPLICA]) as on_replica,
        CaptureQueriesContext(connections[DEFAULT_DB_ALIAS]) as on_primary,
    ):
        answer = _api(token).get(path)
    return answer, _tables_read(on_replica, table), _tables_read(on_primary, table)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LISTS))
def test_each_list_endpoint_is_answered_by_the_standby(name, keys, replica_alias):
    table = LISTS[name]._meta.db_table
    answer, there, here = _get_where(f"/api/v1/{name}/", keys["read"], table)
    assert answer.status_code == 200, answer.content
    assert there, f"no query on {table} reached the standby"
    assert here == []  # and none of the list's on the primary


@pytest.mark.slow
def test_a_retrieve_is_answered_by_the_standby_with_the_committed_row(keys, replica_alias):
    product = ProductFactory(slug="on-both", name="On both")  # committed: live_tenant
    answer, there, here = _get_where(
        f"/api/v1/products/{product.pk}/", keys["read"], Product._meta.db_table
    )
    assert answer.status_code == 200 and answer.json()["slug"] == "on-both"
    assert there and here == []
    with replica.replica_reads():  # the standby has the row, in the store's schema
        assert replica.read_alias() == replica.REPLICA
        assert Product.objects.filter(slug="on-both").exists()


@pytest.mark.slow
def test_a_partners_post_is_in_the_list_it_reads_right_after(keys, replica_alias, standby):
    """Read-your-writes: the list waits for the standby to replay the POST (at most
    DATABASE_REPLICA_MAX_LAG), then reads there. Replay is held for 0.4 s after the POST, so
    the list can only show the product if it waited for it."""
    with standby.replay_paused():
        made = _api(keys["write"]).post(
            "/api/v1/products/",
            json.dumps({"slug": "just-made", "name": "Just made", "price_amount": 1900}),
            content_type="application/json",
        )
        assert made.status_code == 201, made.content
        resume = threading.Timer(0.4, standby.pause_replay, args=(False,))
        resume.start()
        started = time.monotonic()
        answer, there, here = _get_where("/api/v1/products/", keys["read"], Product._meta.db_table)
        waited = time.monotonic() - started
        resume.join()
    assert answer.status_code == 200
    assert "just-made" in [p["slug"] for p in answer.json()["results"]]
    assert there and here == []  # the standby answered, after the POST's WAL was replayed
    assert waited >= 0.3


@pytest.mark.slow
def test_a_standby_behind_the_lag_bound_leaves_the_list_to_the_primary(
    keys, replica_alias, standby, settings
):
    settings.DATABASE_REPLICA_MAX_LAG = 0.3
    with standby.replay_paused():
        Customer.objects.create(email="late@buyer.example")  # committed on the primary only
        answer, there, here = _get_where("/api/v1/customers/", keys["read"], "storefront_customer")
    assert answer.status_code == 200
    assert [c["email"] for c in answer.json()["results"]] == ["late@buyer.example"]
    assert there == [] and here


@pytest.mark.slow
def test_a_standby_that_is_down_leaves_the_list_to_the_primary(keys, replica_alias, standby):
    ProductFactory(slug="still-listed")
    replica_alias["PORT"] = "1"  # nothing listens there
    connections[replica.REPLICA].close()
    del connections[replica.REPLICA]
    with CaptureQueriesContext(connections[DEFAULT_DB_ALIAS]) as on_primary:
        answer = _api(keys["read"]).get("/api/v1/products/")
    assert answer.status_code == 200
    assert [p["slug"] for p in answer.json()["results"]] == ["still-listed"]
    assert _tables_read(on_primary, "storefront_product")
    with replica.replica_reads():  # marked down: not tried again until the retry time
        assert replica.read_alias() == DEFAULT_DB_ALIAS
        assert connections[replica.REPLICA].connection is None


@pytest.mark.slow
def test_writes_and_idempotency_keys_never_touch_the_standby(keys, replica_alias):
    body = json.dumps({"code": "LAUNCH", "kind": "fixed", "amount_off": 500, "currency": "USD"})
    api = _api(keys["write"])
    with CaptureQueriesContext(connections[replica.REPLICA]) as on_replica:
        for _ in range(2):  # the second is the replay of the first's answer
            made = api.post(
                "/api/v1/coupons/",
                body,
                content_type="application/json",
                HTTP_IDEMPOTENCY_KEY="launch-1",
            )
            assert made.status_code == 201, made.content
        coupon_id = made.json()["id"]
        changed = api.patch(
            f"/api/v1/coupons/{coupon_id}/",
            json.dumps({"active": False}),
            content_type="application/json",
        )
        assert changed.status_code == 200, changed.content
    assert made["Idempotent-Replayed"] == "true"
    assert on_replica.captured_queries == []


@pytest.mark.slow
def test_on_the_standby_each_store_lists_only_its_own_rows(keys, replica_alias):
    """The replica connection outlives a request: the next request, for another store, must
    read that store's schema there (core/replica.py `_tenant_follow`), never the last one's."""
    from django.db import connection
    from django_tenants.utils import schema_context

    ProductFactory(slug="only-in-t1", name="Only in t1")  # committed: live_tenant
    with schema_context("t2"):
        ProductFactory(slug="only-in-t2", name="Only in t2")
        t2_key = api_key_create(name="t2 reader", scope=ApiKey.Scope.READ)
    try:
        seen = {}
        for host, token in (
            ("t1.localhost", keys["read"]),
            ("t2.localhost", t2_key.token),
            ("t1.localhost", keys["read"]),
        ):
            with CaptureQueriesContext(connections[replica.REPLICA]) as on_replica:
                answer = Client(HTTP_HOST=host, HTTP_AUTHORIZATION=f"Bearer {token}").get(
                    "/api/v1/products/"
                )
            assert answer.status_code == 200, answer.content
            assert _tables_read(on_replica, Product._meta.db_table), host
            slugs = {p["slug"] for p in answer.json()["results"]}
            seen.setdefault(host, []).append(slugs & {"only-in-t1", "only-in-t2"})
        assert seen == {"t1.localhost": [{"only-in-t1"}] * 2, "t2.localhost": [{"only-in-t2"}]}
    finally:
        with schema_context("t2"):
            ApiKey.objects.all().delete()
        connection.set_schema_to_public()


# --- a replica that fails under the handler (core/replica.py `replica_reads_call`) ---------


def _on(table: str):
    """The first statement on `table` (the list's or the retrieve's own read, after the
    block chose the replica)."""
    return lambda n, sql: f'"{table}"' in sql


@pytest.mark.slow
def test_a_list_whose_standby_backend_is_ended_mid_request_is_answered_by_the_primary(
    keys, replica_alias, standby, settings, caplog
):
    """The list's backend on the standby is terminated between the block's choice (made on
    the standby) and the list's read: the list is read again on the primary, with the store's
    own rows only, and the standby is not asked again until the retry time has passed."""
    from django_tenants.utils import schema_context

    settings.DATABASE_REPLICA_RETRY_SECONDS = 1.5
    ProductFactory(slug="t1-a")
    ProductFactory(slug="t1-b")
    with schema_context("t2"):
        ProductFactory(slug="t2-only")
    with replica_fails_at(standby, _on("storefront_product")) as fault:
        answer, there, here = _get_where("/api/v1/products/", keys["read"], "storefront_product")
    marked_down = time.monotonic()
    assert fault.made  # the standby was chosen, then its backend ended:
    assert "pg_is_in_recovery" in " ".join(fault.statements[:-1])
    assert answer.status_code == 200, answer.content
    assert sorted(p["slug"] for p in answer.json()["results"]) == ["t1-a", "t1-b"]
    assert answer.json()["count"] == 2
    assert len(there) == 1 and here  # tried on the standby once, answered by the primary
    assert "replica unavailable" in caplog.text
    # Marked down: the next list sends the standby nothing at all.
    with replica_fails_at(standby, lambda n, sql: False) as watch:
        answer = _api(keys["read"]).get("/api/v1/products/")
    assert answer.status_code == 200 and len(answer.json()["results"]) == 2
    assert watch.statements == []
    time.sleep(max(0.0, marked_down + 1.6 - time.monotonic()))
    answer, there, here = _get_where("/api/v1/products/", keys["read"], "storefront_product")
    assert answer.status_code == 200 and there and here == []  # back on the standby


@pytest.mark.slow
def test_a_retrieve_whose_standby_shuts_down_mid_request_is_answered_by_the_primary(
    keys, replica_alias, standby
):
    product = ProductFactory(slug="kept", name="Kept")
    with replica_fails_at(standby, _on("storefront_product"), how="shutdown") as fault:
        answer, there, here = _get_where(
            f"/api/v1/products/{product.pk}/", keys["read"], "storefront_product"
        )
    assert fault.made
    assert answer.status_code == 200, answer.content
    assert (answer.json()["slug"], answer.json()["name"]) == ("kept", "Kept")
    assert len(there) == 1 and len(here) == 1


class PrimaryFault(Exception):
    pass


def _primary_fails(at, calls: list[str]):
    """An execute wrapper for the primary connection: a DatabaseError of the primary's at the
    statements for which `at(sql)` holds."""
    from django.db import OperationalError

    def wrapper(execute, sql, params, many, context):
        if at(sql):
            calls.append(sql)
            raise OperationalError("the primary failed") from PrimaryFault()
        return execute(sql, params, many, context)

    return wrapper


@pytest.mark.slow
def test_a_failure_of_the_primarys_inside_the_block_is_not_retried(keys, replica_alias):
    """The block's own statement on the primary (the WAL position it waits for) fails: the
    request fails with that error, once, and the standby is not marked down for it."""
    from django.db import OperationalError

    calls: list[str] = []
    primary = connections[DEFAULT_DB_ALIAS]
    with (
        primary.execute_wrapper(_primary_fails(lambda sql: "wal_insert_lsn" in sql, calls)),
        CaptureQueriesContext(connections[replica.REPLICA]) as on_replica,
        pytest.raises(OperationalError, match="the primary failed"),
    ):
        _api(keys["read"]).get("/api/v1/products/")
    assert len(calls) == 1  # not run again
    assert on_replica.captured_queries == []
    with replica.replica_reads():  # not marked down: the standby was not at fault
        assert replica.read_alias() == replica.REPLICA


@pytest.mark.slow
def test_after_the_standby_failed_a_failure_of_the_primarys_is_not_retried_again(
    keys, replica_alias, standby
):
    """The standby fails under the list, the list runs again on the primary, and the primary
    fails too: that error is the request's (it is not the standby's), after one retry."""
    from django.db import OperationalError

    calls: list[str] = []
    primary = connections[DEFAULT_DB_ALIAS]
    with (
        replica_fails_at(standby, _on("storefront_product")) as fault,
        primary.execute_wrapper(_primary_fails(lambda sql: '"storefront_product"' in sql, calls)),
        pytest.raises(OperationalError, match="the primary failed") as raised,
    ):
        _api(keys["read"]).get("/api/v1/products/")
    assert fault.made and isinstance(raised.value.__cause__, PrimaryFault)
    assert len(calls) == 1


@pytest.mark.slow
def test_a_standby_ended_at_any_statement_of_a_list_gives_the_clean_answer_and_writes_nothing(
    keys, replica_alias, standby
):
    """Fuzz-ish: the standby's backend is ended before each kind of statement a list sends it
    in turn (the choice, the count, the page, a fresh connection's `SET search_path`). Every
    answer is the one a clean run gives, and the primary is sent no write but the key's
    `last_used_at` (these are reads: nothing is half-done, nothing done twice)."""
    for slug in ("f-1", "f-2", "f-3"):
        ProductFactory(slug=slug)
    clean = _api(keys["read"]).get("/api/v1/products/?page_size=2")
    assert clean.status_code == 200
    with replica_fails_at(standby, lambda n, sql: False) as dry:
        assert _api(keys["read"]).get("/api/v1/products/?page_size=2").json() == clean.json()
    kinds = list(dict.fromkeys(dry.statements)) + ['SET search_path = "t1","public"']
    assert len(kinds) >= 4 and "pg_is_in_recovery" in kinds[0]
    for kind in [*kinds, None]:
        replica.replica_retry_now()
        with (
            replica_fails_at(standby, lambda n, sql, kind=kind: sql == kind) as fault,
            CaptureQueriesContext(connections[DEFAULT_DB_ALIAS]) as on_primary,
        ):
            answer = _api(keys["read"]).get("/api/v1/products/?page_size=2")
        assert answer.status_code == 200, (kind, answer.content)
        assert answer.json() == clean.json(), kind
        assert fault.made == (kind is not None), kind
        writes = [
            q["sql"]
            for q in on_primary.captured_queries
            if q["sql"].lstrip().split(" ", 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}
        ]
        assert all(w.startswith('UPDATE "partners_apikey"') for w in writes), (kind, writes)
    assert sorted(Product.objects.values_list("slug", flat=True)) == ["f-1", "f-2", "f-3"]
