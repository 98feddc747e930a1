"""Fairness between stores (core/fairness.py): a store holds at most STORE_MAX_IN_FLIGHT
requests at once; its excess is refused with 503 + Retry-After while other stores are served."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test import Client

from core import fairness
from tests.security import fairness_urls

pytestmark = pytest.mark.urls("tests.security.fairness_urls")


@pytest.fixture
def limit(settings):
    settings.STORE_MAX_IN_FLIGHT = 2
    fairness_urls.release.clear()
    yield 2
    fairness_urls.release.set()


def _get(host: str, path: str):
    return Client(HTTP_HOST=host).get(path)


def _get_in_thread(host: str, path: str, results: list) -> None:
    try:
        results.append(_get(host, path).status_code)
    finally:
        connection.close()  # this thread's own connection


def _hold(host: str, n: int) -> tuple[list[threading.Thread], list[int]]:
    """n requests of `host` in flight (inside the view) until fairness_urls.release is set."""
    results: list[int] = []
    threads = [
        threading.Thread(target=_get_in_thread, args=(host, "/hold/", results)) for _ in range(n)
    ]
    for t in threads:
        t.start()
    for _ in range(n):
        assert fairness_urls.entered.acquire(timeout=20), "a held request never started"
    return threads, results


def test_a_store_at_its_limit_is_refused_while_another_store_is_served(db, limit):
    threads, held = _hold("t1.localhost", limit)
    try:
        refused = _get("t1.localhost", "/ok/")
        assert refused.status_code == 503
        assert refused["Retry-After"] == "1"
        assert b"very busy" in refused.content
        assert _get("t2.localhost", "/ok/").status_code == 200
        api = Client(HTTP_HOST="t1.localhost").get("/api/v1/ok/", HTTP_ACCEPT="application/json")
        assert api.status_code == 503 and api.json()["error"] == "store_busy"
    finally:
        fairness_urls.release.set()
        for t in threads:
            t.join(30)
    assert held == [200] * limit
    # The held requests gave their slots back.
    assert _get("t1.localhost", "/ok/").status_code == 200


def test_below_the_limit_a_store_is_not_refused(db, limit):
    threads, _ = _hold("t1.localhost", limit - 1)
    try:
        assert _get("t1.localhost", "/ok/").status_code == 200
    finally:
        fairness_urls.release.set()
        for t in threads:
            t.join(30)


def test_a_slot_left_by_a_killed_process_stops_counting_after_the_ttl(db, limit, monkeypatch):
    now = {"ms": 1_900_000_000_000}
    monkeypatch.setattr(fairness, "_clock_ms", lambda: now["ms"])
    for _ in range(limit):  # taken and never given back
        assert fairness.slot_acquire(schema="t1", limit=limit)
    assert _get("t1.localhost", "/ok/").status_code == 503
    now["ms"] += 61_000
    assert _get("t1.localhost", "/ok/").status_code == 200


def test_with_redis_unreachable_requests_are_served(db, limit, monkeypatch):
    def down():
        raise ConnectionError("redis down")

    monkeypatch.setattr(fairness, "_redis", down)
    assert _get("t1.localhost", "/ok/").status_code == 200


def test_the_limit_is_off_when_set_to_zero(db, settings):
    fairness.slot_acquire(schema="t1", limit=1)  # one in flight: a limit of 1 would refuse
    settings.STORE_MAX_IN_FLIGHT = 0
    assert _get("t1.localhost", "/ok/").status_code == 200
    settings.STORE_MAX_IN_FLIGHT = 1
    assert _get("t1.localhost", "/ok/").status_code == 503


def test_on_a_live_server_a_flood_of_one_store_is_capped_while_another_is_served(
    live_tenant, live_server_port, limit
):
    """Eight clients hammer store A for three seconds on the threaded live server while one
    client uses store B: A never has more than its share inside the view and gets 503s; every
    request of B is served."""
    import http.client
    import time
    from collections import Counter

    fairness_urls.most_in_view.clear()
    stop = time.monotonic() + 3
    a_statuses: Counter = Counter()
    b_statuses: Counter = Counter()
    lock = threading.Lock()

    def client(host: str, statuses: Counter) -> None:
        try:
            while time.monotonic() < stop:
                conn = http.client.HTTPConnection("127.0.0.1", live_server_port, timeout=30)
                conn.request("GET", "/work/", headers={"Host": host})
                status = conn.getresponse().status
                conn.close()
                with lock:
                    statuses[status] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=("t1.localhost", a_statuses)) for _ in range(8)]
    threads.append(threading.Thread(target=client, args=("t2.localhost", b_statuses)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert fairness_urls.most_in_view["t1.localhost"] <= limit
    assert a_statuses[503] > 0 and a_statuses[200] > 0
    assert set(a_statuses) == {200, 503}
    assert b_statuses[200] > 0 and set(b_statuses) == {200}
