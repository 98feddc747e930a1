"""At most `WEB_CPU_SLOTS` threads of a web process run a heavy request's code at once (issue 19).

A gthread worker has 32 threads but one GIL. When the gateway's answers to 50 waiting
buyers arrive together, 50 threads become runnable at once, and a product page that arrives
then (0.3 ms of work, drawn per change) takes the GIL several times on its way through (read
the request, run the view, write the answer); each time it waits behind every runnable
thread of its process in turn. That made its p99 56–88 ms while the median was 1–2 ms
(bench/README.md "The product page while buyers wait on a 2 s gateway").

So a request, unless it is a GET of a view marked light (`cpu_light`), first takes one of the
process's slots (`CpuSlotMiddleware.process_view`) and gives it back when the view has
answered. A slot is for running Python, not for waiting: the request gives it back for every
database statement (an execute wrapper on each of its connections, installed when it takes
its first slot) and whenever it waits on something else outside the process — the payment
gateway (payments/stripe_gateway.py `_call`), the replica's catch-up, another request's
Idempotency-Key, a DNS look-up: `waiting()`. So a request waiting on a slow gateway or a slow
query holds no slot, throughput stays bound by the CPU, the threads beyond the slots wait on
a lock (which costs no CPU and holds no GIL) instead of taking turns on the GIL, and a light
page competes with at most `WEB_CPU_SLOTS` other threads of its process.

No deadlock through the database: a thread never waits on the database while it holds a
slot, so a row lock held by a thread that waits for a slot cannot hold up a slot holder. A
slot holder could still wait on a Python lock held by a thread that waits for a slot (no
request path holds one across a statement or a gateway call today); for that, and for any
wait not marked, a request that gets no slot within `WEB_CPU_SLOT_WAIT_SECONDS` runs without
one (as before this module) rather than wait longer: the bound is for latency, never a reason
to stall. `WEB_CPU_SLOTS = 0` turns it off. Celery workers and management commands never take
a slot, so `waiting()` and the statement wrapper do nothing there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable)

_state = threading.local()
_slots: threading.Semaphore | None = None
_slots_size = -1
_slots_lock = threading.Lock()


def cpu_light(view: F) -> F:
    """Mark a view whose GET usually answers from memory in well under a millisecond (a page
    drawn per change): its GETs never take a slot, so they are not queued behind the heavy
    requests; its POSTs do."""
    view.cpu_light = True  # type: ignore[attr-defined]
    return view


def _semaphore() -> threading.Semaphore | None:
    global _slots, _slots_size
    size = int(getattr(settings, "WEB_CPU_SLOTS", 0) or 0)
    if size != _slots_size:
        with _slots_lock:
            if size != _slots_size:
                _slots, _slots_size = (threading.Semaphore(size) if size > 0 else None), size
    return _slots


def holding() -> bool:
    """Whether this thread holds a slot now."""
    return getattr(_state, "slots", None) is not None


def acquire() -> bool:
    """Take a slot for this thread (once; a second call is a no-op). False if none came in
    time or slots are off: the thread then runs without one."""
    if not _take():
        return False
    _wrap_statements()
    return True


def _take() -> bool:
    if holding():
        return True
    slots = _semaphore()
    if slots is None:
        return False
    wait = float(getattr(settings, "WEB_CPU_SLOT_WAIT_SECONDS", 2.0))
    if not slots.acquire(timeout=wait):
        logger.info("no CPU slot within %.1f s: running without one", wait)
        return False
    _state.slots = slots
    return True


def _statement(execute, sql, params, many, context):
    """Every statement of a thread that holds a slot runs without it (module doc)."""
    with waiting():
        return execute(sql, params, many, context)


def _wrap_statements() -> None:
    """Put `_statement` on this thread's connections (once each: they are per thread)."""
    for alias in settings.DATABASES:
        wrappers = connections[alias].execute_wrappers
        if _statement not in wrappers:
            wrappers.insert(0, _statement)


def release() -> None:
    """Give this thread's slot back, if it holds one (to the semaphore it came from, even if
    the setting changed meanwhile)."""
    slots = getattr(_state, "slots", None)
    if slots is not None:
        _state.slots = None
        slots.release()


@contextmanager
def waiting() -> Iterator[None]:
    """Around a wait on something outside the process: the slot is free meanwhile and taken
    again after (module doc). Does nothing for a thread without a slot."""
    if not holding():
        yield
        return
    release()
    try:
        yield
    finally:
        _take()


_LIGHT_METHODS = frozenset({"GET", "HEAD"})


class CpuSlotMiddleware:
    """Last in MIDDLEWARE: a view not marked `cpu_light` runs holding a slot (module doc)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            return self.get_response(request)
        finally:
            release()

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.method in _LIGHT_METHODS and getattr(view_func, "cpu_light", False):
            return None
        acquire()
        return None
