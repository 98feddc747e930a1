"""Reads on a PostgreSQL streaming replica, when one is configured (`DATABASE_REPLICA_URL`).

Only reads that ask for it go there: code wraps them in `replica_reads()` (the dashboard, the
analytics CSVs). Everything else, and every write, stays on the primary. Inside the block
the ORM (through `ReplicaRouter`) and raw SQL (through `read_alias()`) use the alias the block
chose once, at its first read:

- **the replica** when it has replayed everything the primary had written when the block
  began (its `pg_last_wal_replay_lsn()` ≥ the primary's `pg_current_wal_insert_lsn()` taken
  then: the insert position, not the write position `pg_current_wal_lsn()`, which lags a
  commit made with `synchronous_commit = off` until the WAL writer's next round).
  The block waits for that at most `DATABASE_REPLICA_MAX_LAG` seconds (0.5 unless set). So a
  read on the replica is never older than the request, and a read model the request just
  refreshed on the primary (analytics.rollups.rollups_refresh) is there when it is read;
  A write in the block (through the ORM, or announced with `replan()` after raw SQL) makes
  the next read choose again, so the block reads its own writes;
- **the primary** when the replica is further behind than that, is down or errs (it is then
  not asked again for `DATABASE_REPLICA_RETRY_SECONDS`, 5 unless set), or when the primary
  connection is inside a transaction (its reads must see its own uncommitted writes).

The replica connection follows the primary connection's tenant whenever a read goes there, so
`SET search_path` names the same schema on both. The replica is never
migrated (`allow_migrate`) and never written to (`db_for_write`).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from core.cpu_slots import waiting

logger = logging.getLogger(__name__)

T = TypeVar("T")

REPLICA = "replica"
POLL_SECONDS = 0.01


@dataclass
class _Plan:
    primary_lsn: str | None = None
    alias: str | None = None


_plan: contextvars.ContextVar[_Plan | None] = contextvars.ContextVar("replica_plan", default=None)
_down_until = 0.0
_down_lock = threading.Lock()


def configured() -> bool:
    return REPLICA in settings.DATABASES


@contextmanager
def replica_reads() -> Iterator[None]:
    """Let the reads in this block go to the replica when it is fresh enough (module doc)."""
    if not configured() or _plan.get() is not None:
        yield
        return
    token = _plan.set(_Plan())
    try:
        yield
    finally:
        _plan.reset(token)


def read_alias() -> str:
    """The database alias for a read here: the replica inside a `replica_reads()` block that
    chose it, the primary everywhere else."""
    plan = _plan.get()
    if plan is None:
        return DEFAULT_DB_ALIAS
    if connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return DEFAULT_DB_ALIAS
    if plan.alias is None:
        plan.alias = _choose()
    if plan.alias == REPLICA:
        _tenant_follow()
    return plan.alias


def _choose() -> str:
    if time.monotonic() < _down_until:
        return DEFAULT_DB_ALIAS
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
        primary_lsn = cursor.fetchone()[0]
    deadline = time.monotonic() + float(getattr(settings, "DATABASE_REPLICA_MAX_LAG", 0.5))
    replica = connections[REPLICA]
    try:
        while True:
            with replica.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_is_in_recovery() AND "
                    "COALESCE(pg_last_wal_replay_lsn() >= %s::pg_lsn, false)",
                    [primary_lsn],
                )
                if cursor.fetchone()[0]:
                    return REPLICA
            if time.monotonic() >= deadline:
                logger.info(
                    "replica behind the primary's %s: reading from the primary", primary_lsn
                )
                return DEFAULT_DB_ALIAS
            with waiting():
                time.sleep(POLL_SECONDS)
    except DatabaseError as exc:
        _mark_down(exc)
        return DEFAULT_DB_ALIAS


def _mark_down(exc: Exception) -> None:
    global _down_until
    logger.warning("replica unavailable (%s): reading from the primary", exc)
    with _down_lock:
        _down_until = time.monotonic() + float(
            getattr(settings, "DATABASE_REPLICA_RETRY_SECONDS", 5)
        )
    try:
        connections[REPLICA].close()
    except DatabaseError:
        pass


def read_with_fallback(read: Callable[[str], T]) -> T:
    """`read(alias)` on `read_alias()`; if the replica fails mid-read, the same read again on
    the primary (and the rest of the block stays there)."""
    alias = read_alias()
    if alias == DEFAULT_DB_ALIAS:
        return read(alias)
    try:
        return read(alias)
    except DatabaseError as exc:
        _mark_down(exc)
        plan = _plan.get()
        if plan is not None:
            plan.alias = DEFAULT_DB_ALIAS
        return read(DEFAULT_DB_ALIAS)


def replan() -> None:
    """This block wrote to the primary: its next read chooses again (and so sees the write)."""
    plan = _plan.get()
    if plan is not None:
        plan.alias = None


def replica_retry_now() -> None:
    """Forget that the replica was down (tests; an operator after fixing it)."""
    global _down_until
    with _down_lock:
        _down_until = 0.0


def _tenant_follow() -> None:
    """The replica connection reads the primary connection's schema (the request's tenant)."""
    primary, replica = connections[DEFAULT_DB_ALIAS], connections[REPLICA]
    if replica.tenant is not primary.tenant:
        replica.set_tenant(primary.tenant, primary.include_public_schema)


class ReplicaRouter:
    """Reads in a `replica_reads()` block go where the block chose; writes to the primary."""

    def db_for_read(self, model, **hints):
        return read_alias()

    def db_for_write(self, model, **hints):
        replan()
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        if db == REPLICA:
            return False
        return None
