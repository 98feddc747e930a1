"""One-statement writes the ORM spells as two: INSERT … ON CONFLICT and UPDATE … RETURNING,
and a write joined to the read that follows it (a data-modifying `WITH`).

The money routes count statements (bench/query_budgets.py): a `get_or_create` is a SELECT, a
savepoint, an INSERT and a release; a conditional UPDATE followed by a re-read is two. These
helpers send one statement through Django's cursor (so query counters and wrappers see it) and
give back model instances, with the same outcome under concurrency: the database decides.

A `WITH` joins statements that would run back to back in the same transaction anyway; its
parts run once and to completion whether or not the outer query reads them, and they all see
one snapshot: the outer SELECT sees the rows as they were before the statement's own writes
(the callers say why that is what they want).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from django.db import connections, models, router

from core.fixedsql import FixedQuery

M = TypeVar("M", bound=models.Model)
R = TypeVar("R", bound=models.Model)


@functools.cache
def _columns(model: type[models.Model], alias: str | None = None) -> str:
    # Once per process: names from the model's meta, no schema (the search_path picks it).
    table = alias or model._meta.db_table
    return ", ".join(f'"{table}"."{f.column}"' for f in model._meta.concrete_fields)


def _rows(model: type[M], sql: str, params: Sequence[Any]) -> list[M]:
    """The statement's rows as instances, as `model.objects.raw(sql, params)` gives them
    (columns matched to fields by name, the fields' converters applied, other columns set as
    attributes), with the matching worked out once per process per set of column names."""
    # A write: on the write alias, never where a read router would send a raw query (the
    # replica, inside core.replica.replica_reads).
    alias = router.db_for_write(model)
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = tuple(column.name for column in cursor.description)
        rows = cursor.fetchall()
    plan = _RAW_PLANS.get((model, names, alias))
    if plan is None:
        plan = _RAW_PLANS[model, names, alias] = _raw_plan(model, names, connection)
    init_names, init_positions, converters, extras = plan
    out = []
    for row in rows:
        if converters:
            row = list(row)
            for pos, funcs, col in converters:
                value = row[pos]
                for convert in funcs:
                    value = convert(value, col, connection)
                row[pos] = value
        instance = model.from_db(alias, init_names, [row[pos] for pos in init_positions])
        for name, pos in extras:
            setattr(instance, name, row[pos])
        out.append(instance)
    return out


_RAW_PLANS: dict[tuple, tuple] = {}


def _raw_plan(model: type[models.Model], names: tuple[str, ...], connection) -> tuple:
    # RawQuerySet.resolve_model_init_order and RawModelIterable's converters, for PostgreSQL
    # (whose backend adds no converters of its own and keeps identifiers as they are): the
    # fields' own converters, which hold no connection.
    if connection.vendor != "postgresql":
        raise NotImplementedError(connection.vendor)
    by_column = {f.column: f for f in model._meta.fields}
    init = [f for f in model._meta.fields if f.column in names]
    if model._meta.pk not in init:
        raise ValueError("the statement must return the primary key")
    converters = []
    for pos, name in enumerate(names):
        field = by_column.get(name)
        if field is None:
            continue
        col = field.get_col(model._meta.db_table)
        funcs = col.get_db_converters(connection)
        if funcs:
            converters.append((pos, tuple(funcs), col))
    return (
        [f.attname for f in init],
        [names.index(f.column) for f in init],
        tuple(converters),
        tuple((name, pos) for pos, name in enumerate(names) if name not in by_column),
    )


def update_returning(
    model: type[M],
    *,
    assignments: str,
    where: str,
    params: Sequence[Any],
    joins: str = "",
    extra: str = "",
    then: str = "",
    then_params: Sequence[Any] = (),
) -> list[M]:
    """`UPDATE <table> SET <assignments> WHERE <where> RETURNING *` as instances (the rows the
    UPDATE changed, as they are after it; none when the condition matched nothing).

    `joins`: the UPDATE's FROM list (then qualify the columns in `where`); `extra`: more
    RETURNING expressions, `… AS "name"`, read as attributes of the instances; `params` are
    those of the SQL in text order (SET, FROM, WHERE, extra). `then`: a data-modifying
    statement run in the same statement, reading the changed rows as "updated" (e.g.
    `INSERT … SELECT … FROM "updated"`), with `then_params`."""
    table = model._meta.db_table
    returning = _columns(model) + (f", {extra}" if extra else "")
    update = f'UPDATE "{table}" SET {assignments}'  # noqa: S608 (names, not input)
    update += f" FROM {joins}" if joins else ""
    update += f" WHERE {where} RETURNING {returning}"
    if not then:
        return _rows(model, update, params)
    sql = f'WITH "updated" AS ({update}), "then" AS ({then}) SELECT * FROM "updated"'
    return _rows(model, sql, [*params, *then_params])


def update_then_select(
    queryset: models.QuerySet[M] | tuple[FixedQuery[M], tuple],
    *,
    table: str,
    assignments: str,
    where: str,
    params: Sequence[Any],
) -> list[M]:
    """`UPDATE <table> SET <assignments> WHERE <where>`, then the rows of `queryset` (of its
    own model's columns only: no select_related), in one statement. The SELECT sees what it
    reads as it was before the UPDATE (one snapshot): for a write and a read of different
    rows that would run back to back. `queryset` may be a FixedQuery with its arguments: its
    SQL compiled once per process."""
    if isinstance(queryset, tuple):
        fixed, args = queryset
        model, (select, select_params) = fixed.model, fixed.sql(*args)
        related = fixed.select_related
    else:
        model, (select, select_params) = queryset.model, queryset.query.sql_with_params()
        related = queryset.query.select_related
    if related:
        raise ValueError("update_then_select reads one model's columns")
    update = f'UPDATE "{table}" SET {assignments} WHERE {where}'  # noqa: S608 (names)
    sql = f'WITH "written" AS ({update}) {select}'
    return _rows(model, sql, [*params, *select_params])


def update_returning_with_related(
    model: type[M],
    *,
    assignments: str,
    where: str,
    params: Sequence[Any],
    related: type[R],
    fk: str,
) -> list[tuple[M, list[R]]]:
    """`update_returning` and, in the same statement, the rows of `related` whose `fk` column
    points at each changed row (in pk order): [(row, its related rows)]. The related rows are
    read as they were when the statement began (one snapshot), so a caller uses this where
    no other transaction can be adding them meanwhile."""
    table, other = model._meta.db_table, related._meta.db_table
    pk, related_pk = model._meta.pk.column, related._meta.pk.column
    update = f'UPDATE "{table}" SET {assignments} WHERE {where} '  # noqa: S608 (names)
    update += f"RETURNING {_columns(model)}"
    sql = (
        f'WITH "updated" AS ({update}) SELECT {_columns(model, "updated")}, '
        f'{_columns(related, "r")} FROM "updated" LEFT JOIN "{other}" "r" '
        f'ON "r"."{fk}" = "updated"."{pk}" ORDER BY "updated"."{pk}", "r"."{related_pk}"'
    )
    alias = router.db_for_write(model)
    connection = connections[alias]
    width = len(model._meta.concrete_fields)
    own_pk = model._meta.concrete_fields.index(model._meta.pk)
    related_at = width + related._meta.concrete_fields.index(related._meta.pk)
    out: list[tuple[M, list[R]]] = []
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for row in cursor.fetchall():
            if not out or out[-1][0].pk != row[own_pk]:
                out.append((_instance(model, row[:width], connection, alias), []))
            if row[related_at] is not None:  # LEFT JOIN: a row without related rows
                out[-1][1].append(_instance(related, row[width:], connection, alias))
    return out


def _instance(model: type[M], values: Sequence[Any], connection, alias: str) -> M:
    """A model instance from its concrete columns' values as the driver returned them, through
    the same converters the ORM applies (JSON, decimals, …)."""
    fields = model._meta.concrete_fields
    converted = []
    for field, value in zip(fields, values, strict=True):
        column = field.get_col(model._meta.db_table)
        for convert in connection.ops.get_db_converters(column) + column.get_db_converters(
            connection
        ):
            value = convert(value, column, connection)
        converted.append(value)
    return model.from_db(alias, [f.attname for f in fields], converted)


def insert_returning(
    obj: M,
    *,
    conflict: str = "DO NOTHING",
    params: Sequence[Any] = (),
    computed: Mapping[str, tuple[str, Sequence[Any]]] | None = None,
) -> M | None:
    """INSERT `obj` with `ON CONFLICT <conflict>`, RETURNING the row as an instance (with its
    pk). None when the conflict clause did nothing (the row already exists). `conflict` may
    be e.g. `("email") DO UPDATE SET "x" = EXCLUDED."x"`, with `params` for its placeholders.
    `computed` gives some fields an SQL expression of the same statement instead of the
    object's value ({"field": ("(SELECT …)", [params])}): read when the row is written, with
    no round trip of its own."""
    model = type(obj)
    computed = computed or {}
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    connection = connections[router.db_for_write(model)]
    marks, values = [], []
    for f in fields:
        if f.name in computed:
            sql, sql_params = computed[f.name]
            marks.append(sql)
            values += list(sql_params)
        else:
            marks.append("%s")
            values.append(f.get_db_prep_save(f.pre_save(obj, True), connection))
    table = model._meta.db_table
    names = ", ".join(f'"{f.column}"' for f in fields)
    rows = _rows(
        model,
        f'INSERT INTO "{table}" ({names}) VALUES ({", ".join(marks)}) '  # noqa: S608
        f"ON CONFLICT {conflict} RETURNING {_columns(model)}",
        [*values, *params],
    )
    return rows[0] if rows else None
