"""One-statement writes the ORM spells as two: INSERT … ON CONFLICT and UPDATE … RETURNING.

The money routes count statements (bench/query_budgets.py): a `get_or_create` is a SELECT, a
savepoint, an INSERT and a release; a conditional UPDATE followed by a re-read is two. These
helpers send one statement through Django's cursor (so query counters and wrappers see it) and
give back model instances, with the same outcome under concurrency: the database decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from django.db import connections, models, router

M = TypeVar("M", bound=models.Model)


def _columns(model: type[models.Model]) -> str:
    return ", ".join(f'"{f.column}"' for f in model._meta.concrete_fields)


def _rows(model: type[M], sql: str, params: Sequence[Any]) -> list[M]:
    # A write: on the write alias, never where a read router would send a raw query (the
    # replica, inside core.replica.replica_reads).
    return list(model.objects.raw(sql, params).using(router.db_for_write(model)))


def update_returning(
    model: type[M], *, assignments: str, where: str, params: Sequence[Any]
) -> list[M]:
    """`UPDATE <table> SET <assignments> WHERE <where> RETURNING *` as instances (the rows the
    UPDATE changed, as they are after it; none when the condition matched nothing)."""
    table = model._meta.db_table
    return _rows(
        model,
        f'UPDATE "{table}" SET {assignments} WHERE {where} '  # noqa: S608 (names, not input)
        f"RETURNING {_columns(model)}",
        params,
    )


def insert_returning(
    obj: M, *, conflict: str = "DO NOTHING", params: Sequence[Any] = ()
) -> M | None:
    """INSERT `obj` with `ON CONFLICT <conflict>`, RETURNING the row as an instance (with its
    pk). None when the conflict clause did nothing (the row already exists). `conflict` may
    be e.g. `("email") DO UPDATE SET "x" = EXCLUDED."x"`, with `params` for its placeholders."""
    model = type(obj)
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    connection = connections[router.db_for_write(model)]
    values = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    table = model._meta.db_table
    names = ", ".join(f'"{f.column}"' for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    rows = _rows(
        model,
        f'INSERT INTO "{table}" ({names}) VALUES ({marks}) '  # noqa: S608 (names, not input)
        f"ON CONFLICT {conflict} RETURNING {_columns(model)}",
        [*values, *params],
    )
    return rows[0] if rows else None
