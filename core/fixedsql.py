"""Hot fixed-shape ORM reads compiled to SQL once per process, then run with new values.

Compiling a queryset (`SQLCompiler.as_sql`: every selected column of every joined model
quoted and compiled, the WHERE and ORDER BY built from expressions) cost the money routes
about as much CPU as sending and reading their statements (bench/README.md "Compiled once
per process"). For a read whose shape never changes (the same filters, joins and columns;
only the values differ) the SQL is the same string every time:

    _ORDER = FixedQuery(Order, lambda token: Order.objects.select_related("customer").filter(
        token=token))
    order = _ORDER.first(token)          # = ….filter(token=token).first()
    # also .all(token) = list(…), .exists(token), .sql(token) = query.sql_with_params()

The first call per database alias and argument types compiles the queryset the ordinary way
with unique probe values in place of the arguments, finds each probe in the compiled
parameters (so a value the field converts, or a lookup that rewrites it, is refused rather
than guessed), and keeps the SQL with the compiler's column map; later calls send that SQL
with the new values through Django's cursor (query counters, tenants' search_path, the
router's alias) and build the instances as `QuerySet.__iter__` does. The SQL names no schema
(django-tenants sets the search_path per connection), so one compile serves every tenant.

Arguments must be `int` or `str` (not bool, not None: `None` turns `= %s` into `IS NULL`, a
different shape). `fresh_sql(*args)` compiles the same queryset the ordinary way, for the
tests that hold the cached SQL to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections, models, router
from django.db.models.query import get_related_populators
from django.db.transaction import TransactionManagementError

M = TypeVar("M", bound=models.Model)

#: Every FixedQuery made (module level, at import): the tests check each one's SQL.
REGISTRY: list[FixedQuery] = []

_ARG_TYPES = (int, str)


def _probe(i: int, kind: type) -> Any:
    # Values no real argument has, told apart from each other and from the constants.
    if kind is int:
        return -7_340_000_000_017 - i
    # Mixed case, a full-width letter and outer spaces: a normalisation inside the build
    # (lower(), NFKC, strip(), email_key) changes it, so the check below refuses the query
    # instead of keeping SQL that skips the normalisation.
    return f" \x01FixedSQL-Probe-{i}\uff38\x01 "


@dataclass(frozen=True)
class _Compiled:
    sql: str
    # Per parameter: (None, the constant) or (the argument's index, the wrapper the backend
    # put on it, e.g. psycopg's Int8 for a bigint column, or None).
    slots: tuple[tuple[int | None, Any], ...]
    query: Any
    select: Any
    klass_info: Any
    annotation_col_map: Any
    col_count: int
    has_extra_select: bool
    for_update: bool
    instances: bool  # rows become model instances as QuerySet.__iter__ makes them


class FixedQuery(Generic[M]):
    """`build(*args)` → a queryset of model instances whose shape does not depend on args."""

    def __init__(self, model: type[M], build: Callable[..., models.QuerySet[M]], *, name: str = ""):
        self.model = model
        self._build = build
        self._for_update = False
        self.select_related: bool | None = None  # known once compiled
        self.name = name or getattr(build, "__qualname__", repr(build))
        self._cache: dict[tuple, _Compiled] = {}
        REGISTRY.append(self)

    # --- the queryset, the ordinary way -------------------------------------------------------

    def queryset(self, *args: Any, mode: str = "all") -> models.QuerySet[M]:
        qs = self._build(*args)
        if mode == "first":  # exactly what QuerySet.first() runs
            qs = (qs if qs.ordered else qs.order_by("pk"))[:1]
        return qs

    @staticmethod
    def _query(qs: models.QuerySet, mode: str, db: str):
        # QuerySet.exists() runs Query.exists(): `SELECT 1 AS "a" … LIMIT 1`.
        return qs.query.exists() if mode == "exists" else qs.query

    def fresh_sql(self, *args: Any, mode: str = "all") -> tuple[str, list]:
        """The SQL and params Django compiles for these values, run as `mode`."""
        qs = self.queryset(*args, mode=mode)
        sql, params = self._query(qs, mode, qs.db).get_compiler(using=qs.db).as_sql()
        return sql, list(params)

    # --- compiled once ------------------------------------------------------------------------

    def _compile(self, db: str, types: tuple[type, ...], mode: str) -> _Compiled:
        probes = [_probe(i, kind) for i, kind in enumerate(types)]
        qs = self.queryset(*probes, mode=mode)
        if qs.model is not self.model or qs._db is not None:
            raise ValueError(
                f"{self.name}: not a {self.model.__name__} queryset on the routed alias"
            )
        instances = not (
            qs._prefetch_related_lookups
            or qs._known_related_objects
            or qs._iterable_class is not models.query.ModelIterable
        )
        query = self._query(qs, mode, db)
        compiler = query.get_compiler(using=db)
        sql, params = compiler.as_sql()
        self.select_related = bool(qs.query.select_related)
        slots, seen = [], set()
        for value in params:
            index = next(
                (i for i, p in enumerate(probes) if isinstance(value, type(p)) and value == p),
                None,
            )
            if index is None:
                slots.append((None, value))
            else:
                slots.append((index, None if type(value) is types[index] else type(value)))
                seen.add(index)
        if len(seen) != len(probes):
            # A probe the field or lookup converted (or dropped): its real value would be
            # converted too, and sending it unconverted could differ. Keep such a read ORM.
            raise ValueError(
                f"{self.name}: arguments {set(range(len(probes))) - seen} not sent as given"
            )
        return _Compiled(
            sql=sql,
            slots=tuple(slots),
            query=query,
            select=compiler.select,
            klass_info=compiler.klass_info,
            annotation_col_map=compiler.annotation_col_map,
            col_count=compiler.col_count,
            has_extra_select=compiler.has_extra_select,
            for_update=qs.query.select_for_update,
            instances=instances,
        )

    def sql(self, *args: Any) -> tuple[str, tuple]:
        """The queryset's SQL and params as `query.sql_with_params()` gives them (the default
        alias), for a caller that embeds it in a statement of its own."""
        types = self._types(args)
        key = (DEFAULT_DB_ALIAS, types, "sql")
        c = self._cache.get(key)
        if c is None:
            c = self._cache[key] = self._compile(DEFAULT_DB_ALIAS, types, "all")
        return c.sql, tuple(self._params(c, args))

    def _types(self, args: tuple) -> tuple[type, ...]:
        types = tuple(type(a) for a in args)
        if any(t not in _ARG_TYPES for t in types):
            raise TypeError(f"{self.name}: arguments must be int or str, not {types}")
        return types

    @staticmethod
    def _params(c: _Compiled, args: tuple) -> list:
        return [v if i is None else (args[i] if v is None else v(args[i])) for i, v in c.slots]

    def _get(self, args: tuple, mode: str) -> tuple[str, _Compiled]:
        types = self._types(args)
        # The alias the queryset would use, per call (the router may follow a request's
        # state): select_for_update makes it a write, learned at the first compile.
        db = (router.db_for_write if self._for_update else router.db_for_read)(self.model)
        key = (db, types, mode)
        compiled = self._cache.get(key)
        if compiled is None:
            compiled = self._compile(db, types, mode)
            if compiled.for_update != self._for_update:
                self._for_update = compiled.for_update
                return self._get(args, mode)
            self._cache[key] = compiled
        return db, compiled

    # --- running ------------------------------------------------------------------------------

    def all(self, *args: Any) -> list[M]:
        """= list(queryset)."""
        return self._run(args, "all")

    def first(self, *args: Any) -> M | None:
        """= queryset.first()."""
        rows = self._run(args, "first")
        return rows[0] if rows else None

    def exists(self, *args: Any) -> bool:
        """= queryset.exists()."""
        db, c = self._get(args, "exists")
        with connections[db].cursor() as cursor:
            cursor.execute(c.sql, self._params(c, args))
            return cursor.fetchone() is not None

    def _run(self, args: tuple, mode: str) -> list[M]:
        db, c = self._get(args, mode)
        if not c.instances:
            raise ValueError(f"{self.name}: only plain model querysets run here; use .sql()")
        connection = connections[db]
        if c.for_update and connection.get_autocommit():
            raise TransactionManagementError(
                "select_for_update cannot be used outside of a transaction."
            )
        params = self._params(c, args)
        compiler = c.query.get_compiler(using=db)  # this thread's connection
        compiler.select, compiler.klass_info = c.select, c.klass_info
        compiler.annotation_col_map, compiler.col_count = c.annotation_col_map, c.col_count
        compiler.has_extra_select = c.has_extra_select
        with connection.cursor() as cursor:
            cursor.execute(c.sql, params)
            rows = cursor.fetchall()
        if c.has_extra_select:
            rows = [row[: c.col_count] for row in rows]
        return self._instances(db, compiler, c, rows)

    @staticmethod
    def _instances(db: str, compiler, c: _Compiled, rows: list) -> list:
        # QuerySet's ModelIterable, without the known related objects (none here).
        if not rows:
            return []
        klass_info, select = c.klass_info, c.select
        model_cls = klass_info["model"]
        select_fields = klass_info["select_fields"]
        start, end = select_fields[0], select_fields[-1] + 1
        init_list = [f[0].target.attname for f in select[start:end]]
        populators = get_related_populators(klass_info, select, db)
        out = []
        for row in compiler.results_iter([rows]):
            obj = model_cls.from_db(db, init_list, row[start:end])
            for populator in populators:
                populator.populate(row, obj)
            if c.annotation_col_map:
                for attr, pos in c.annotation_col_map.items():
                    setattr(obj, attr, row[pos])
            out.append(obj)
        return out
