"""Reads on a PostgreSQL streaming replica, when one is configured (`DATABASE_REPLICA_URL`).

Only reads that ask for it go there: code wraps them in `replica_reads()`, or hands a read
handler to `replica_reads_call()` (the dashboard and its CSVs, the metrics API, the partner
API's list and retrieve). Everything else, and every write, stays on the primary. Inside the block
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

A replica that fails *after* the block chose it (its connection lost, the standby shut down, a
statement cancelled by a recovery conflict: an OperationalError or InterfaceError raised by a
statement sent to it) is handled in two places. Raw reads through `read_with_fallback()` run
again on the primary. Under `replica_reads_call(read)` the whole of `read` runs again with the
block pinned to the primary, and the replica is not asked again for
`DATABASE_REPLICA_RETRY_SECONDS`. Reads are safe to run twice. To know that the replica failed,
an execute wrapper on the replica connection keeps what its statements raised; only an
exception that is one of those, or was raised from one, is retried. A failure of the
primary's, or a ProgrammingError that would be the primary's too, propagates as before, and a
read that already ran again on the primary is not run a third time. `read` returns what it read;
nothing is sent before it returns. None of these handlers streams: the CSV exports are
built whole in an HttpResponse. A streamed response's body would be read after the block has
closed, so on the primary.

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
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    InterfaceError,
    OperationalError,
    connections,
)

from core.cpu_slots import waiting

logger = logging.getLogger(__name__)

T = TypeVar("T")

REPLICA = "replica"
POLL_SECONDS = 0.01


@dataclass
class _Plan:
    primary_lsn: str | None = None
    alias: str | None = None
    pinned: bool = False  # on the primary for the rest of the block (a retry after a failure)


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


def replica_reads_call(read: Callable[..., T], *args, **kwargs) -> T:
    """`read(*args, **kwargs)` inside a `replica_reads()` block; if the replica fails under it,
    once more with the block pinned to the primary (module doc). `read` must only read, and
    must return what it read (not start sending it): it may run twice."""
    if not configured() or _plan.get() is not None:  # an enclosing block answers for it
        return read(*args, **kwargs)
    raised: list[BaseException] = []
    token = _plan.set(_Plan())
    try:
        try:
            with connections[REPLICA].execute_wrapper(_Record(raised)):
                return read(*args, **kwargs)
        except Exception as exc:
            if not _the_replicas(exc, raised):
                raise
            _mark_down(exc)
        _plan.set(_Plan(alias=DEFAULT_DB_ALIAS, pinned=True))
        return read(*args, **kwargs)
    finally:
        _plan.reset(token)


# What a failing replica raises: a lost or closed connection, a standby shut down, a statement
# cancelled by a recovery conflict (SQLSTATE 40001) or a timeout. A ProgrammingError or
# DataError there is the query's and would be the primary's too: not retried.
_REPLICA_FAULTS = (OperationalError, InterfaceError)


@dataclass
class _Record:
    """An execute wrapper on the replica connection: keeps what its statements raised."""

    raised: list[BaseException]

    def __call__(self, execute, sql, params, many, context):
        try:
            return execute(sql, params, many, context)
        except _REPLICA_FAULTS as exc:
            self.raised.append(exc)
            raise


def _the_replicas(exc: BaseException, raised: list[BaseException]) -> bool:
    """Whether `exc` is a fault of the replica's statements, or was raised from one. Not
    merely during one: `read_with_fallback` reads on the primary while handling the replica's
    fault, and that read's own failure is the primary's."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if any(cause is fault for fault in raised):
            return True
        seen.add(id(cause))
        cause = cause.__cause__
    return False


def read_alias() -> str:
    """The database alias for a read here: the replica inside a `replica_reads()` block that
    chose it, the primary everywhere else."""
    plan = _plan.get()
    if plan is None or plan.pinned:
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
    if plan is not None and not plan.pinned:
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
