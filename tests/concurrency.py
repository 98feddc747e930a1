"""Racing work against itself: n threads, each on its own database connection, released at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection


def in_threads(
    n: int, fn: Callable[[], Any], *, tenant=None, timeout: float = 120
) -> tuple[list, list[BaseException]]:
    """Run `fn` in `n` threads that start together; (results, exceptions raised), never swallowed.

    With `tenant`, each thread's connection is set to that tenant first (None: public schema
    is not forced; `fn` may set its own). Each thread closes its own connection.
    """
    barrier = threading.Barrier(n)
    results: list = []
    errors: list[BaseException] = []

    def run() -> None:
        if tenant is not None:
            connection.set_tenant(tenant)
        try:
            barrier.wait(timeout=30)
            results.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return results, errors


def each_at_once(
    fns: list[Callable[[], Any]], *, tenant=None, timeout: float = 120
) -> tuple[list, list[BaseException]]:
    """Run each of `fns` in a thread of its own (different work racing), all released together
    as `in_threads` does: (results in finishing order, exceptions raised)."""
    pending = iter(fns)
    lock = threading.Lock()

    def take_one():
        with lock:
            fn = next(pending)
        return fn()

    return in_threads(len(fns), take_one, tenant=tenant, timeout=timeout)
