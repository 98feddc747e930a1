"""CPU slots (core/cpu_slots.py): a heavy view runs holding one of the process's slots, gives it
back while it waits on the gateway, and a page drawn per change never queues for one."""

from __future__ import annotations

import threading
import time

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from core import cpu_slots
from core.cpu_slots import CpuSlotMiddleware, cpu_light, holding, waiting


@pytest.fixture
def one_slot(settings):
    settings.WEB_CPU_SLOTS = 1
    settings.WEB_CPU_SLOT_WAIT_SECONDS = 5.0
    yield
    cpu_slots.release()


class _Holder:
    """Another thread that takes a slot and keeps it until told to let go."""

    def __init__(self):
        self.got = threading.Event()
        self.free = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.got.wait(5)

    def _run(self):
        cpu_slots.acquire()
        self.got.set()
        self.free.wait(10)
        cpu_slots.release()

    def let_go(self):
        self.free.set()
        self.thread.join(5)


def _through_middleware(view, method="POST"):
    """Run `view` as Django would, behind the middleware; returns the response and whether
    the view held a slot."""
    seen = {}

    def get_response(request):
        middleware.process_view(request, view, (), {})
        response = view(request)
        seen["held"] = holding()
        return response

    middleware = CpuSlotMiddleware(get_response)
    request = RequestFactory().generic(method, "/")
    return middleware(request), seen["held"]


def _heavy(request):
    return HttpResponse("heavy")


@cpu_light
def _light(request):
    return HttpResponse("light")


def test_a_heavy_view_runs_holding_a_slot_and_gives_it_back(one_slot):
    response, held = _through_middleware(_heavy)
    assert response.status_code == 200 and held
    assert not holding()
    # Given back: another thread takes the only slot at once.
    holder = _Holder()
    holder.let_go()


def test_a_light_get_never_waits_for_a_slot_but_its_post_does(one_slot, settings):
    holder = _Holder()  # the only slot is taken
    try:
        started = time.monotonic()
        response, held = _through_middleware(_light, method="GET")
        assert response.content == b"light" and not held
        assert time.monotonic() - started < 1.0
        settings.WEB_CPU_SLOT_WAIT_SECONDS = 0.3
        started = time.monotonic()
        response, held = _through_middleware(_light, method="POST")
        # It waited for the slot as long as allowed, then ran without one.
        assert time.monotonic() - started >= 0.3
        assert response.content == b"light" and not held
    finally:
        holder.let_go()


def test_a_heavy_view_waits_for_the_slot_and_gets_it_when_it_is_free(one_slot):
    holder = _Holder()
    result = {}

    def run():
        result["response"], result["held"] = _through_middleware(_heavy)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.3)
    assert thread.is_alive(), "the heavy view ran while the only slot was taken"
    holder.let_go()
    thread.join(5)
    assert result["held"] and result["response"].status_code == 200


def test_the_slot_comes_back_when_the_view_raises(one_slot):
    def broken(request):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        _through_middleware(broken)
    assert not holding()
    assert cpu_slots._semaphore().acquire(timeout=0.1)
    cpu_slots._semaphore().release()


def test_the_slot_is_free_while_waiting_and_taken_again_after(one_slot):
    assert cpu_slots.acquire()
    with waiting():
        assert not holding()
        holder = _Holder()  # another thread gets the only slot meanwhile
        holder.let_go()
    assert holding()
    cpu_slots.release()
    assert not holding()


def test_waiting_without_a_slot_does_nothing(one_slot):
    with waiting():
        assert not holding()
    assert not holding()


def test_off_means_no_slot_and_no_wait(settings):
    settings.WEB_CPU_SLOTS = 0
    assert cpu_slots.acquire() is False
    response, held = _through_middleware(_heavy)
    assert response.status_code == 200 and not held


def test_the_gateway_call_runs_without_the_slot(one_slot):
    from payments.stripe_gateway import StripeGateway

    gateway = StripeGateway(secret_key="sk_test_x", api_base="http://127.0.0.1:9")
    assert cpu_slots.acquire()
    seen = []
    assert gateway._call(lambda: seen.append(holding()) or "ok") == "ok"
    assert seen == [False]
    assert holding()  # taken again for the rest of the request
    cpu_slots.release()


def test_slots_bound_the_threads_running_heavy_views_at_once(settings):
    settings.WEB_CPU_SLOTS = 2
    settings.WEB_CPU_SLOT_WAIT_SECONDS = 10.0
    running, most = [0], [0]
    lock = threading.Lock()

    def busy(request):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return HttpResponse("ok")

    threads = [threading.Thread(target=_through_middleware, args=(busy,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert most[0] == 2


@pytest.mark.django_db
def test_a_statement_runs_without_the_slot_and_takes_it_again_after(one_slot):
    from django.db import connection

    assert cpu_slots.acquire()
    got = threading.Event()

    def other():
        # Only possible while this thread's statement runs: the only slot is free then.
        if cpu_slots._take():
            got.set()
            cpu_slots.release()

    with connection.cursor() as cursor:
        thread = threading.Timer(0.1, other)
        thread.start()
        cursor.execute("SELECT pg_sleep(0.6)")
        thread.join(5)
    assert got.is_set(), "the slot was held through the statement"
    assert holding()  # taken again for the rest of the request
    cpu_slots.release()
    assert cpu_slots._statement in connection.execute_wrappers
