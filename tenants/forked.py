"""Many schemas at once: work split into batches over forked worker processes.

Provisioning, spare-making and migrating across tenants are server-bound and independent per
schema, so each runs in `jobs` forked workers, one database connection each. What is read
once (the template's DDL, the migration graph) is read before the fork and inherited.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import TypeVar

from django.db import connections

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


def forget_inherited_connections() -> None:
    """In a forked worker: never reuse the parent's sockets (the parent closed them first)."""
    for conn in connections.all(initialized_only=True):
        conn.connection = None
        conn.search_path_set_schemas = None


def forked_batches(
    work: Callable[[list[Item]], list[Outcome]],
    items: Sequence[Item],
    *,
    jobs: int,
    failed: Callable[[Item, Exception], Outcome],
    batch: int | None = None,
) -> Iterator[tuple[Item, Outcome]]:
    """Yield (item, outcome) as batches finish; `work(batch)` returns one outcome per item.

    `work` must be picklable (a module-level function or a partial of one). A worker that
    dies yields `failed(item, exc)` for every item of its batch; the other batches go on. Batches
    default to a size that keeps progress fine-grained (about 4 per job, at most 10 items).
    """
    size = batch or max(1, min(10, len(items) // (jobs * 4)))
    batches = [list(items[i : i + size]) for i in range(0, len(items), size)]
    connections.close_all()  # the workers must not share the parent's sockets
    pool = ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=multiprocessing.get_context("fork"),
        initializer=forget_inherited_connections,
    )
    with pool:
        futures = {pool.submit(work, b): b for b in batches}
        for future in as_completed(futures):
            part = futures[future]
            try:
                outcomes = future.result()
            except Exception as exc:  # a worker died: every item of its batch is reported
                outcomes = [failed(item, exc) for item in part]
            yield from zip(part, outcomes, strict=True)
