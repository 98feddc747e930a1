"""Spare schemas: clones of the template made ahead of time, so a burst of sign-ups waits for none.

A clone is server work: about 270 relations, each a set of catalog rows and a file, and on
PostgreSQL 15 every index build is fsynced on its own; 100-150 ms of one core per schema,
whatever the client does (bench/README.md, "Tenancy"). `spares_fill` pays that ahead of time
(beat's `tenants.spares_refill` keeps `TENANT_SPARE_SCHEMAS` waiting; `manage.py spares --fill N`
for a known burst), and a sign-up takes one inside its own transaction:

    DELETE FROM tenants_spareschema WHERE id = (… FOR UPDATE SKIP LOCKED) RETURNING schema_name
    ALTER SCHEMA "_spare_…" RENAME TO "<creator>"

Concurrent sign-ups never share a spare (SKIP LOCKED), and a sign-up that fails rolls both
statements back: the spare is in the pool again under its old name. A spare behind the
migrations on disk (a deploy whose `migrate_tenants` failed for it) is never handed out: it is
dropped and the next one tried. With the pool empty, the caller clones as before.

Renaming is safe because a schema's objects refer to each other by OID, not by name; the one
place a name could hide is a function body or setting, and `spare_make` refuses a spare whose
functions mention their own schema.
"""

from __future__ import annotations

import secrets
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.db import DatabaseError, connection, connections, transaction
from django_tenants.utils import get_public_schema_name, quote_schema_name

from tenants.forked import forked_batches
from tenants.provisioning import (
    _PLACEHOLDER,
    ProvisioningFailed,
    _template_script,
    template_ensure,
)

SPARE_PREFIX = "_spare_"
_FILL_LOCK = zlib.crc32(b"tenants.pool.fill")
_CLAIMS_LOCK = zlib.crc32(b"tenants.pool.claims")


def _public() -> str:
    return quote_schema_name(get_public_schema_name())


def spare_count() -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {_public()}.tenants_spareschema")
        return cursor.fetchone()[0]


def spare_names() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT schema_name FROM {_public()}.tenants_spareschema ORDER BY id")
        return [row[0] for row in cursor.fetchall()]


def spare_make() -> str:
    """One spare: the template's DDL under a fresh name, and its pool row, in one transaction."""
    name = SPARE_PREFIX + secrets.token_hex(6)
    sql = _template_script().sql.replace(_PLACEHOLDER, quote_schema_name(name))
    with transaction.atomic(), connection.search_path_not_needed():
        with connection.cursor() as cursor:
            cursor.execute(sql)
            cursor.execute(
                "SELECT count(*) FROM pg_proc WHERE pronamespace = %s::regnamespace "
                "AND (prosrc LIKE %s OR coalesce(array_to_string(proconfig, ' '), '') LIKE %s)",
                [name, f"%{name}%", f"%{name}%"],
            )
            if cursor.fetchone()[0]:
                raise ProvisioningFailed(
                    "a function of the template names its own schema: a spare could not be "
                    "renamed safely"
                )
            cursor.execute(
                f"INSERT INTO {_public()}.tenants_spareschema (schema_name, created_at) "
                "VALUES (%s, now())",
                [name],
            )
    return name


_CLAIM = """
DELETE FROM {public}.tenants_spareschema WHERE id = (
    SELECT id FROM {public}.tenants_spareschema ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
) RETURNING schema_name
"""


def spare_claim(schema_name: str) -> str | None:
    """In the caller's transaction: rename a current spare to `schema_name`; None if none.

    Returns the spare's old name. Everything here is undone if the caller's transaction is.
    """
    from tenants.schema_migrations import schemas_behind

    if not connection.in_atomic_block:
        raise RuntimeError("spare_claim belongs inside the sign-up's transaction")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock_shared(%s)", [_CLAIMS_LOCK])
        if not cursor.fetchone()[0]:
            return None  # migrate_tenants is running: clone from the template instead
        for _ in range(3):  # bounded: a stale spare is dropped and the next one tried
            cursor.execute(_CLAIM.format(public=_public()))
            row = cursor.fetchone()
            if row is None:
                return None
            spare = row[0]
            if schemas_behind([spare]):  # also a spare whose schema someone dropped
                cursor.execute(f"DROP SCHEMA IF EXISTS {quote_schema_name(spare)} CASCADE")
                continue
            old, new = quote_schema_name(spare), quote_schema_name(schema_name)
            cursor.execute(f"ALTER SCHEMA {old} RENAME TO {new}")
            return spare
    return None


@dataclass
class FillResult:
    made: int = 0
    failed: list[str] = field(default_factory=list)
    busy: bool = False  # another filler held the lock: this call did nothing
    waiting: int = 0  # spares in the pool when the call ended


@contextmanager
def _session_lock(key: int, *, wait: bool):
    """An advisory lock on a connection of its own (forked workers never touch it); yields
    whether it was taken. It goes with the session, so a killed holder releases it; a holder
    that ends normally unlocks it first, since the server ends a closed session's backend (and
    frees its locks) some time after the client has gone: a caller right after us would
    otherwise find the lock still taken."""
    lock_conn = connections.create_connection("default")
    got = False
    try:
        lock_conn.set_schema_to_public()
        with lock_conn.cursor() as cursor:
            if wait:
                cursor.execute("SELECT pg_advisory_lock(%s), true", [key])
            else:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            got = cursor.fetchone()[-1]
        yield got
    finally:
        try:
            if got:
                with lock_conn.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        finally:
            lock_conn.close()


@contextmanager
def claims_paused():
    """While held (by `migrate_tenants`), sign-ups clone instead of taking a spare, so no
    spare is renamed away between the migration pass listing it and migrating it."""
    with _session_lock(_CLAIMS_LOCK, wait=True):
        yield


def spares_fill(
    target: int,
    *,
    jobs: int = 1,
    limit: int | None = None,
    on_progress: Callable[[int, int, str | None], None] | None = None,
) -> FillResult:
    """Make spares until `target` are waiting (at most `limit` in this call)."""
    result = FillResult()
    if target <= 0:
        result.waiting = spare_count()
        return result
    template_ensure()
    with _session_lock(_FILL_LOCK, wait=False) as got:
        if not got:
            result.busy = True
            result.waiting = spare_count()
            return result
        need = max(0, target - spare_count())
        if limit is not None:
            need = min(need, limit)
        done = 0

        def record(error: str | None) -> None:
            nonlocal done
            done += 1
            if error is None:
                result.made += 1
            else:
                result.failed.append(error)
            if on_progress is not None:
                on_progress(done, need, error)

        if jobs <= 1 or need <= 1:
            for _ in range(need):
                record(_make_one())
        else:
            _template_script()  # read the template once, before forking, so workers share it
            for _, error in forked_batches(
                _make_many, range(need), jobs=jobs, failed=lambda n, exc: f"worker failed: {exc}"
            ):
                record(error)
        result.waiting = spare_count()
    return result


def _make_one() -> str | None:
    try:
        spare_make()
    except (DatabaseError, ProvisioningFailed) as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


def _make_many(batch: list[int]) -> list[str | None]:
    return [_make_one() for _ in batch]


def spares_drop_all() -> int:
    """Drop every spare (e.g. before a restore); returns how many."""
    dropped = 0
    for name in spare_names():
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {_public()}.tenants_spareschema WHERE schema_name = %s "
                "RETURNING schema_name",
                [name],
            )
            if cursor.fetchone() is not None:
                cursor.execute(f"DROP SCHEMA IF EXISTS {quote_schema_name(name)} CASCADE")
                dropped += 1
    return dropped
