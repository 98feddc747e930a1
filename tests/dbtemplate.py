"""Parallel runs: the test database is built once per run and copied for every worker.

Migrating the public and tenant schemas and creating the session tenants costs each worker
~40 s; three workers doing it at once on two cores delay every test. Instead the first worker
to get here (a PostgreSQL advisory lock, held on the server's `postgres` database) builds
`test_<name>_tpl_<key>` with `build` (migrations and the session tenants), and every worker
then makes its own `test_<name>_gwN` with `CREATE DATABASE … TEMPLATE` (a copy of files:
about a second).

`<key>` is a hash of what the built database depends on (every migration file, the tenant
provisioning code, this module and tests/conftest.py, Django's and django-tenants' versions):
a changed migration gets a new template, never a stale one. With `--reuse-db` an existing,
complete template and a worker database copied from it are kept; with `--create-db` the
template is built again once for the run (the run's xdist id is recorded on it) and every
worker database is copied afresh. A template for another key is dropped when a new one is
built.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import psycopg
from psycopg import errors, sql

ROOT = Path(__file__).resolve().parent.parent
COPY_WAIT_SECONDS = 120  # another run's worker may still be connected to the template


def template_key() -> str:
    digest = hashlib.sha256()
    files = sorted(ROOT.glob("*/migrations/*.py"))
    files += [ROOT / "tests" / "conftest.py", *sorted((ROOT / "tenants").glob("*.py"))]
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    digest.update(Path(__file__).read_bytes())
    for package in ("django", "django-tenants"):
        digest.update(version(package).encode())
    return digest.hexdigest()[:12]


def template_name(database: str, key: str) -> str:
    return f"test_{database}_tpl_{key}"


def _maintenance(connection) -> psycopg.Connection:
    params = connection.get_connection_params()
    params["dbname"] = "postgres"
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("prepare_threshold", None)
    return psycopg.connect(**params, autocommit=True)


def _comment(cursor, database: str) -> str | None:
    cursor.execute(
        "SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database"
        " WHERE datname = %s",
        [database],
    )
    row = cursor.fetchone()
    return None if row is None else row[0]


def _drop(cursor, database: str) -> None:
    cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(database)))


def worker_database(
    connection, *, build: Callable[[str], None], createdb: bool, run_id: str
) -> str:
    """Make this worker's test database a copy of the run's template, building the template
    first if no worker has; returns the worker database's name.

    `build(name)` must create database `name` fully set up and close every connection to it.
    """
    database = connection.settings_dict["NAME"]
    worker_db = connection.creation._get_test_db_name()
    template = template_name(database, template_key())
    ready = f"ready {run_id}" if createdb else "ready"
    with _maintenance(connection) as admin, admin.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(hashtext(%s))", [template])
        try:
            comment = _comment(cursor, template)
            fresh = (
                comment is not None
                and comment.startswith("ready")
                and (not createdb or comment == ready)
            )
            if not fresh:
                _drop(cursor, template)
                build(template)
                cursor.execute(
                    sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                        sql.Identifier(template), sql.Literal(ready)
                    )
                )
                _drop_other_templates(cursor, database, keep=template)
        finally:
            cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [template])
        copy_of = f"copy of {template} {run_id}".strip()
        if not createdb and (_comment(cursor, worker_db) or "").startswith(f"copy of {template}"):
            return worker_db
        _drop(cursor, worker_db)
        _copy(cursor, template, worker_db)
        cursor.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(worker_db), sql.Literal(copy_of)
            )
        )
    return worker_db


def _copy(cursor, template: str, target: str) -> None:
    statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
        sql.Identifier(target), sql.Identifier(template)
    )
    deadline = time.monotonic() + COPY_WAIT_SECONDS
    while True:
        try:
            cursor.execute(statement)
            return
        except errors.ObjectInUse:  # "source database … is being accessed by other users"
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _drop_other_templates(cursor, database: str, *, keep: str) -> None:
    cursor.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE %s AND datname <> %s",
        [template_name(database, "%"), keep],
    )
    for (name,) in cursor.fetchall():
        try:
            _drop(cursor, name)
        except errors.ObjectInUse:  # another run is copying it: leave it for next time
            pass


def run_id() -> str:
    return os.environ.get("PYTEST_XDIST_TESTRUNUID", "")
