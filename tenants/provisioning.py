"""Creator schemas cloned from a migrated template schema instead of replaying migrations.

The template (`settings.TENANT_BASE_SCHEMA`) is an ordinary tenant schema brought up by the
ordinary migrations, with nothing in it but what migrations and `post_migrate` write (the
migrations table, content types, permissions). Its DDL is taken once per process with `pg_dump`
(the one tool that knows how to reproduce every catalog object PostgreSQL has) and replayed per
creator with the schema name changed: one round trip of DDL, the template's rows copied with
`INSERT … SELECT`, sequences set to the template's values. All of it in one transaction, so a
failure leaves no half-made schema. tests/tenancy/test_provisioning.py compares the catalog of
a clone with a schema migrated from scratch.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import zlib
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.migrations.loader import MigrationLoader
from django_tenants.postgresql_backend.base import _check_schema_name
from django_tenants.utils import quote_schema_name, schema_exists

TEMPLATE_SCHEMA: str = getattr(settings, "TENANT_BASE_SCHEMA", "_tenant_template")
_LOCK_KEY = zlib.crc32(b"tenants.provisioning.template")
_PLACEHOLDER = "\x00SCHEMA\x00"


class ProvisioningFailed(RuntimeError):
    """The template could not be read or replayed; nothing was created."""


@dataclass(frozen=True)
class _TemplateScript:
    fingerprint: tuple
    sql: str  # with _PLACEHOLDER where the schema name goes


_script: _TemplateScript | None = None
_script_lock = threading.Lock()
_expected: frozenset[tuple[str, str]] | None = None


def expected_migrations() -> frozenset[tuple[str, str]]:
    """Every migration on disk: a schema is current when all of them are recorded in it.

    Django records every migration in every schema it migrates, also those the tenant router
    turns into no-ops there, so this is the same set for public, the template and creators.
    """
    global _expected
    if _expected is None:
        loader = MigrationLoader(None, ignore_no_migrations=True)
        _expected = frozenset(loader.graph.nodes)
    return _expected


def applied_migrations(schema: str) -> set[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT app, name FROM {quote_schema_name(schema)}.django_migrations")
        return set(cursor.fetchall())


def template_ensure(*, verbosity: int = 0) -> None:
    """Create or bring the template up to date with the migrations on disk. Idempotent."""
    if schema_exists(TEMPLATE_SCHEMA) and _template_has_migrations_table():
        if not expected_migrations() - applied_migrations(TEMPLATE_SCHEMA):
            return
    if connection.in_atomic_block:
        # pg_dump reads the template from its own connection: it must be committed first.
        raise ProvisioningFailed(
            f"the template schema {TEMPLATE_SCHEMA!r} is missing or behind; run "
            "`manage.py migrate_tenants` (or provision outside a transaction) first"
        )
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [_LOCK_KEY])
    try:
        missing = True
        if schema_exists(TEMPLATE_SCHEMA) and _template_has_migrations_table():
            missing = bool(expected_migrations() - applied_migrations(TEMPLATE_SCHEMA))
        if missing:
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_schema_name(TEMPLATE_SCHEMA)}")
            previous = connection.tenant
            try:
                from tenants.schema_migrations import schema_migrate

                schema_migrate(TEMPLATE_SCHEMA)
            finally:
                connection.set_tenant(previous)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_LOCK_KEY])


def _template_has_migrations_table() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = 'django_migrations'",
            [TEMPLATE_SCHEMA],
        )
        return cursor.fetchone() is not None


def _fingerprint() -> tuple:
    """Changes whenever a migration is applied to the template (cheap: one tiny query)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*), max(id), max(applied) "
            f"FROM {quote_schema_name(TEMPLATE_SCHEMA)}.django_migrations"
        )
        return tuple(cursor.fetchone())


def _pg_dump(section: str) -> str:
    db = connection.settings_dict
    env = dict(os.environ)
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])
    cmd = [
        getattr(settings, "PG_DUMP_BINARY", "pg_dump"),
        "--schema-only",
        f"--section={section}",
        f"--schema={TEMPLATE_SCHEMA}",
        "--no-owner",
        "--no-privileges",
        "--no-tablespaces",
        "--no-security-labels",
        "--no-publications",
        "--no-subscriptions",
        "--dbname",
        db["NAME"],
    ]
    if db.get("HOST"):
        cmd += ["--host", db["HOST"]]
    if db.get("PORT"):
        cmd += ["--port", str(db["PORT"])]
    if db.get("USER"):
        cmd += ["--username", db["USER"]]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ProvisioningFailed(f"pg_dump of the template failed: {result.stderr.strip()}")
    return result.stdout


# Session settings (they would leak into the Django connection) and psql meta-commands
# (newer pg_dump wraps its output in \restrict … \unrestrict).
_SESSION_LINE = re.compile(r"^(SET |SELECT pg_catalog\.set_config\(|\\)")


def _templated(ddl: str) -> str:
    """pg_dump's DDL with the template's name replaced by a placeholder, minus session SETs."""
    lines = [line for line in ddl.splitlines() if not _SESSION_LINE.match(line)]
    lines = [line for line in lines if not line.startswith("--")]
    text = "\n".join(lines)
    name = re.escape(TEMPLATE_SCHEMA)
    text = re.sub(rf'(?<![\w"])(?:"{name}"|{name})(?=\.)', _PLACEHOLDER, text)
    text = re.sub(
        rf"^CREATE SCHEMA (?:\"{name}\"|{name});",
        f"CREATE SCHEMA {_PLACEHOLDER};",
        text,
        flags=re.M,
    )
    if TEMPLATE_SCHEMA in text:
        # The name appears somewhere we did not rewrite (a function body, a default): a clone
        # would point back into the template. Refuse rather than build a subtly wrong schema.
        raise ProvisioningFailed(
            f"the template's DDL mentions {TEMPLATE_SCHEMA!r} outside a qualified name"
        )
    return text


def _data_and_sequences() -> str:
    """Copy the rows migrations wrote into the template; align sequences with it."""
    template = quote_schema_name(TEMPLATE_SCHEMA)
    statements = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY c.relname",
            [TEMPLATE_SCHEMA],
        )
        tables = [row[0] for row in cursor.fetchall()]
        for table in tables:
            cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {template}.{quote_schema_name(table)})")
            if cursor.fetchone()[0]:
                quoted = quote_schema_name(table)
                statements.append(
                    f"INSERT INTO {_PLACEHOLDER}.{quoted} SELECT * FROM {template}.{quoted};"
                )
        cursor.execute(
            "SELECT sequencename, last_value FROM pg_sequences "
            "WHERE schemaname = %s AND last_value IS NOT NULL ORDER BY sequencename",
            [TEMPLATE_SCHEMA],
        )
        for sequence, last_value in cursor.fetchall():
            literal = f"{_PLACEHOLDER}.{quote_schema_name(sequence)}".replace("'", "''")
            statements.append(f"SELECT pg_catalog.setval('{literal}', {int(last_value)}, true);")
    return "\n".join(statements)


def _template_script() -> _TemplateScript:
    global _script
    fingerprint = _fingerprint()
    script = _script
    if script is not None and script.fingerprint == fingerprint:
        return script
    with _script_lock:
        if _script is not None and _script.fingerprint == fingerprint:
            return _script
        sql = "\n".join(
            [
                _templated(_pg_dump("pre-data")),
                _data_and_sequences(),
                _templated(_pg_dump("post-data")),
            ]
        )
        _script = _TemplateScript(fingerprint, sql)
        return _script


def schema_clone(schema_name: str, *, use_spare: bool = True) -> None:
    """Create `schema_name` as a copy of the template, in one transaction (all or nothing).

    A spare made ahead of time (tenants.pool) is renamed when one is waiting; otherwise the
    template's DDL is replayed here.
    """
    _check_schema_name(schema_name)
    if schema_name == TEMPLATE_SCHEMA:
        raise ProvisioningFailed("the template cannot be cloned onto itself")
    template_ensure()
    sql = _template_script().sql.replace(_PLACEHOLDER, quote_schema_name(schema_name))
    with transaction.atomic():
        if use_spare:
            from tenants.pool import spare_claim

            if spare_claim(schema_name) is not None:
                return
        with connection.cursor() as cursor:
            cursor.execute(sql)


def schema_migrate_fresh(schema_name: str) -> None:
    """The slow way, for comparison and for the template: an empty schema plus every migration."""
    _check_schema_name(schema_name)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {quote_schema_name(schema_name)}")
    from tenants.schema_migrations import schema_migrate

    previous = connection.tenant
    try:
        schema_migrate(schema_name)
    finally:
        connection.set_tenant(previous)
