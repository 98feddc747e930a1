"""Migrations across creator schemas: one cheap pass to find who is behind, then only those.

`schemas_behind()` asks PostgreSQL, in a few UNION ALL queries, how many of the migrations on
disk each schema has recorded; a schema is behind when that count is short. No migration state
is rendered and no per-schema connection is opened for schemas that are current.
`schemas_migrate()` then migrates the laggards in worker processes (each with its own
connection, at most `jobs` at a time), each schema in its own transactions, so one failing
schema is reported and the rest complete.

Each worker loads the migration graph once and keeps a `SchemaMigrator`: the project state
before a plan is rendered once per distinct set of applied migrations (in a deploy, one for
every schema) and cloned for each schema, instead of `migrate` reading every migration file,
rebuilding the graph and re-rendering all models for each of a thousand schemas.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.apps import apps as global_apps
from django.core.management import call_command
from django.core.management.commands.migrate import Command as MigrateCommand
from django.core.management.sql import emit_pre_migrate_signal
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.db.models.signals import post_migrate
from django_tenants.utils import get_public_schema_name, quote_schema_name

from tenants.forked import forked_batches
from tenants.provisioning import TEMPLATE_SCHEMA, expected_migrations

CHUNK = 500  # schemas per UNION ALL query


def tenant_schemas() -> list[str]:
    """The template first, then every creator's schema, then the spares (public excluded)."""
    from tenants.models import Creator, SpareSchema

    public = get_public_schema_name()
    names = list(
        Creator.objects.exclude(schema_name=public)
        .order_by("schema_name")
        .values_list("schema_name", flat=True)
    )
    spares = list(SpareSchema.objects.order_by("id").values_list("schema_name", flat=True))
    return [TEMPLATE_SCHEMA, *names, *spares]


def schemas_behind(schemas: Iterable[str]) -> dict[str, int]:
    """{schema: number of migrations on disk it has not recorded}, only for schemas behind."""
    expected = sorted(f"{app}.{name}" for app, name in expected_migrations())
    schemas = list(schemas)
    behind: dict[str, int] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname, EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = n.oid "
            "AND c.relname = 'django_migrations' AND c.relkind IN ('r', 'p')) "
            "FROM pg_namespace n WHERE n.nspname = ANY(%s)",
            [schemas],
        )
        has_table = dict(cursor.fetchall())
        for schema in schemas:
            if not has_table.get(schema):
                behind[schema] = len(expected)  # missing schema or never migrated
        present = [s for s in schemas if has_table.get(s)]
        for start in range(0, len(present), CHUNK):
            chunk = present[start : start + CHUNK]
            sql = " UNION ALL ".join(
                f"SELECT %(s{i})s, count(*) FROM {quote_schema_name(s)}.django_migrations "
                "WHERE app || '.' || name = ANY(%(expected)s)"
                for i, s in enumerate(chunk)
            )
            params = {f"s{i}": s for i, s in enumerate(chunk)}
            params["expected"] = expected
            cursor.execute(sql, params)
            for schema, count in cursor.fetchall():
                if count < len(expected):
                    behind[schema] = len(expected) - count
    return behind


def schema_migrate(schema: str) -> list[str]:
    """Apply every unapplied migration to one schema; the names applied, in order."""
    public = get_public_schema_name()
    # The migrations table must be found in (or created in) this schema, never public's.
    connection.set_schema(schema, include_public=schema == public)
    MigrationRecorder(connection).ensure_schema()
    before = {f"{a}.{n}" for a, n in MigrationRecorder(connection).applied_migrations()}
    connection.set_schema(schema)
    out = io.StringIO()
    call_command(
        MigrateCommand(),
        interactive=False,
        verbosity=0,
        skip_checks=True,
        stdout=out,
        database=connection.alias,
    )
    after = {f"{a}.{n}" for a, n in MigrationRecorder(connection).applied_migrations()}
    return sorted(after - before)


class SchemaMigrator:
    """Forward migrations for many schemas, reusing one graph and the rendered states.

    What `migrate` does per schema, minus what does not depend on the schema: the graph is
    built once, the state before a plan is rendered once per set of applied migrations and
    cloned per schema, and pre_migrate is sent once per migration (its only receiver,
    contenttypes', rewrites the migration objects in place, which are shared here). Each
    migration still runs in its own transaction and is recorded in the schema's own
    django_migrations; post_migrate (content types, permissions) is sent for the apps that
    had migrations applied, since an app's content types and permissions follow its models and
    those only change through its migrations.
    """

    def __init__(self) -> None:
        self.executor = MigrationExecutor.__new__(MigrationExecutor)
        self.executor.connection = connection
        self.executor.loader = MigrationLoader(None, ignore_no_migrations=True)
        self.executor.recorder = MigrationRecorder(connection)
        self.executor.progress_callback = None
        self.targets = self.executor.loader.graph.leaf_nodes()
        self.usable = not self.executor.loader.replacements  # squashes: let migrate decide
        self._states: dict[frozenset, object] = {}
        self._announced: set[tuple[str, str]] = set()

    def migrate(self, schema: str) -> list[str]:
        if not self.usable:
            return schema_migrate(schema)
        executor, loader = self.executor, self.executor.loader
        # The migrations table must be found in (or created in) this schema, never public's.
        connection.set_schema(schema, include_public=False)
        executor.recorder = MigrationRecorder(connection)
        executor.recorder.ensure_schema()
        loader.applied_migrations = executor.recorder.applied_migrations()
        connection.set_schema(schema)
        loader.check_consistent_history(connection)
        plan = executor.migration_plan(self.targets)
        if not plan:
            return []
        if any(backwards for _, backwards in plan):  # cannot happen for leaf targets
            return schema_migrate(schema)
        key = frozenset(k for k in loader.applied_migrations if k in loader.graph.nodes)
        state = self._states.get(key)
        if state is None:
            state = executor._create_project_state(with_applied_migrations=True)
            state.apps  # noqa: B018 (render once: the expensive part of every `migrate`)
            self._states[key] = state
        state = state.clone()
        fresh = [(m, b) for m, b in plan if (m.app_label, m.name) not in self._announced]
        if fresh:
            emit_pre_migrate_signal(0, False, connection.alias, apps=state.apps, plan=fresh)
            self._announced.update((m.app_label, m.name) for m, _ in fresh)
        applied: list[str] = []
        for migration, _ in plan:
            state = executor.apply_migration(state, migration)
            applied.append(f"{migration.app_label}.{migration.name}")
        state.clear_delayed_apps_cache()
        post_apps = state.apps
        for label in sorted({m.app_label for m, _ in plan}):
            app_config = global_apps.get_app_config(label)
            if app_config.models_module is None:
                continue
            post_migrate.send(
                sender=app_config,
                app_config=app_config,
                verbosity=0,
                interactive=False,
                using=connection.alias,
                apps=post_apps,
                plan=plan,
            )
        return applied


_migrator: SchemaMigrator | None = None


def schema_migrator() -> SchemaMigrator:
    """This process's migrator (a forked worker builds its own on first use)."""
    global _migrator
    if _migrator is None:
        _migrator = SchemaMigrator()
    return _migrator


@dataclass
class SchemaResult:
    schema: str
    applied: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0


def _migrate_in_worker(schema: str) -> SchemaResult:
    started = time.perf_counter()
    try:
        applied = schema_migrator().migrate(schema)
        return SchemaResult(schema, applied, None, time.perf_counter() - started)
    except Exception as exc:  # reported by the parent; the next schema gets a clean connection
        if not connection.in_atomic_block:
            connection.close()
        error = f"{type(exc).__name__}: {exc}"
        return SchemaResult(schema, [], error, time.perf_counter() - started)
    finally:
        connection.set_schema_to_public()


def schemas_migrate(
    schemas: list[str], *, jobs: int, on_result: Callable[[SchemaResult, int, int], None]
) -> list[SchemaResult]:
    """Migrate `schemas`, at most `jobs` at once (one database connection each)."""
    results: list[SchemaResult] = []
    total = len(schemas)
    if jobs <= 1 or total <= 1:
        for schema in schemas:
            result = _migrate_in_worker(schema)
            results.append(result)
            on_result(result, len(results), total)
        return results
    schema_migrator()  # the graph is read once, before forking: every worker inherits it
    for _, result in forked_batches(
        _migrate_batch,
        schemas,
        jobs=jobs,
        batch=1,
        failed=lambda schema, exc: SchemaResult(schema, [], f"worker failed: {exc}"),
    ):
        results.append(result)
        on_result(result, len(results), total)
    return results


def _migrate_batch(schemas: list[str]) -> list[SchemaResult]:
    return [_migrate_in_worker(schema) for schema in schemas]
