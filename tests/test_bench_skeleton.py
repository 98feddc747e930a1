"""bench/skeleton.py makes exactly the round trips it stands for: its figure is a ceiling only if
the skeleton buyer sends what a real buyer sends (statements, transactions, Redis reads,
gateway calls) and nothing more."""

from __future__ import annotations

import contextlib

import pytest
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

import bench.skeleton as skeleton_module
from bench.skeleton import ROUTES, skeleton


class _Counting:
    def __init__(self):
        self.atomic = self.cache = self.gateway = 0


@pytest.fixture
def counted(monkeypatch):
    seen = _Counting()
    real_atomic = skeleton_module.transaction.atomic

    @contextlib.contextmanager
    def atomic(*args, **kwargs):
        seen.atomic += 1
        with real_atomic(*args, **kwargs):
            yield

    class Cache:
        def get(self, key):
            seen.cache += 1

    class Gateway:
        def customer_create(self, *, email, idempotency_key):
            seen.gateway += 1
            return "cus_skeleton"

    monkeypatch.setattr(skeleton_module.transaction, "atomic", atomic)
    monkeypatch.setattr(skeleton_module, "cache", Cache())
    monkeypatch.setattr("payments.gateway.get_gateway", lambda **_: Gateway())
    return seen


def _statements(queries) -> list[str]:
    """What the view sent, less the search_path and the savepoints that stand in for its
    transactions inside the test's own (the transactions are counted at `atomic`)."""
    skip = ("SET ", "SAVEPOINT ", "RELEASE SAVEPOINT ")
    return [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(skip)]


def test_a_buyers_routes_add_up_to_the_measured_round_trips():
    totals = [sum(route[i] for route in ROUTES.values()) for i in range(4)]
    assert totals == [55, 11, 21, 5]
    assert all(2 * t <= s for s, t, _, _ in ROUTES.values())  # two statements per transaction


@pytest.mark.parametrize("name", list(ROUTES))
def test_each_view_sends_its_routes_round_trips_and_no_more(db, counted, name):
    statements, transactions, redis, gateway = ROUTES[name]
    request = RequestFactory().get(f"/bench/skeleton/{statements}/")
    with schema_context("public"), CaptureQueriesContext(connection) as queries:
        response = skeleton(request, statements, transactions, redis, gateway)
    assert response.status_code == 200
    sent = _statements(queries)
    assert len(sent) == statements and all(q.startswith("SELECT ") for q in sent)
    assert (counted.atomic, counted.cache, counted.gateway) == (transactions, redis, gateway)


def test_what_a_request_can_ask_for_is_bounded(db, counted):
    request = RequestFactory().get("/bench/skeleton/")
    with schema_context("public"), CaptureQueriesContext(connection) as queries:
        skeleton(request, 10_000, 10_000, 10_000, 10_000)
    sent = _statements(queries)
    assert len(sent) == 100 and counted.atomic == 50
    assert counted.cache == 100 and counted.gateway == 100
