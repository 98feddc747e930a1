"""At most `WEB_CPU_SLOTS` threads of a web process run a heavy request's code at once (issue 19).

A gthread worker has 32 threads but one GIL. When the gateway's answers to 50 waiting
buyers arrive together, 50 threads become runnable at once, and a product page that arrives
then (0.3 ms of work, drawn per change) takes the GIL several times on its way through (read
the request, run the view, write the answer); each time it waits behind every runnable
thread of its process in turn. That made its p99 56–88 ms while the median was 1–2 ms
(bench/README.md "The product page while buyers wait on a 2 s gateway").

So a request, unless it is a GET of a view marked light (`cpu_light`), first takes one of the
process's slots (`CpuSlotMiddleware.process_view`), and gives it back when the view has
answered and whenever it waits on something slow outside the process — the payment gateway
(payments/stripe_gateway.py `_call`), the replica's catch-up, another request's
Idempotency-Key: `waiting()`. A heavy request therefore never holds a slot while it waits,
so throughput stays bound by the CPU, not by the gateway; the threads beyond the slots wait
on a lock (which costs no CPU and holds no GIL) instead of taking turns on the GIL, and a
light page competes with at most `WEB_CPU_SLOTS` other threads.

No deadlock from the database: a thread that waits for a slot holds no row lock, because the
only places that give a slot back mid-request (`waiting()`) are never inside a transaction (a
gateway call never is: docs/architecture.md), and a request takes its first slot before its
view's first statement. If a slot does not come within `WEB_CPU_SLOT_WAIT_SECONDS` the
request runs without one (as before this module) rather than wait longer: the bound is for
latency, never a reason to stall. `WEB_CPU_SLOTS = 0` turns it off. Celery workers and
management commands never take a slot, so `waiting()` there does nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from django.conf import settings

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
        acquire()


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
