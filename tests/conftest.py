"""Test infrastructure: tenants created once per session, each test in a rolled-back transaction.

Tenants `t1` and `t2` (hosts t1.localhost, t2.localhost) exist for the whole session. The
`tenant` fixture puts the connection in t1's schema; `other_tenant` is t2. `live_tenant`
gives committed data (for threads, a live server and a browser) and afterwards empties what
committing tests write, in t1 and t2 (committed_data_clear). localstripe runs once per
session on 127.0.0.1 and is cleared between tests.
"""

from __future__ import annotations

import contextlib
import io
import os
import urllib.request

import pytest
from django.db import connection, connections

from devtools import services

TENANTS = {"t1": "t1.localhost", "t2": "t2.localhost"}


def pytest_configure(config):
    # The Celery workers the tests start (tests/worker_support.py, the drills) skip Django's
    # system checks at boot (Celery's Django fix-up runs them unless this is set): 0.5 s of
    # CPU each, about thirty starts a run. The suite checks the project itself
    # (tests/security/test_production_settings.py runs `manage.py check --deploy`).
    os.environ.setdefault("CELERY_SKIP_CHECKS", "1")
    config.addinivalue_line("markers", "worker: starts a real Celery worker process")
    config.addinivalue_line("markers", "gateway: talks to the session's localstripe")
    config.addinivalue_line("markers", "browser: drives headless Chromium")
    # The outbox sends to the real broker even while tests run other tasks eagerly: expected.
    config.addinivalue_line("filterwarnings", "ignore::celery.exceptions.AlwaysEagerIgnored")
    if not os.environ.get("STRIPE_API_BASE"):
        os.environ.update(services.localstripe_env())
        from django.conf import settings

        for key in (
            "STRIPE_API_BASE",
            "STRIPE_JS_URL",
            "STRIPE_SECRET_KEY",
            "STRIPE_WEBHOOK_SECRET",
        ):
            setattr(settings, key, os.environ[key])
    from django.conf import settings

    settings.STRIPE_WEBHOOK_SECRET = settings.STRIPE_WEBHOOK_SECRET or "whsec_test_secret"


def pytest_runtest_setup(item):
    """Refuse flushing tests before any fixture runs.

    A transactional test (django_db(transaction=True), transactional_db) flushes every table
    it can see when it ends: the session tenants t1/t2, their domains and users would be gone
    for every later test. Tests that need commits use `live_tenant`, which empties only the
    tenant app tables.
    """
    marker = item.get_closest_marker("django_db")
    flushing = (marker is not None and marker.kwargs.get("transaction")) or (
        "transactional_db" in getattr(item, "fixturenames", ())
    )
    if flushing:
        pytest.fail(
            "transactional tests flush the session tenants; use the live_tenant fixture instead",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def django_db_setup(
    request, django_db_blocker, django_db_createdb, django_db_keepdb, django_db_modify_db_settings
):
    """The test database with tenants t1 and t2. In a parallel run each worker gets a copy of
    one database built for the run (tests/dbtemplate.py); a single process builds its own."""
    from django.conf import settings
    from django.test.utils import setup_databases

    from tests import dbtemplate

    original = connection.settings_dict["NAME"]
    worker = getattr(request.config, "workerinput", {}).get("workerid")
    with django_db_blocker.unblock():
        if worker:

            def build(name: str) -> None:
                test_settings = connection.settings_dict.setdefault("TEST", {})
                worker_name = test_settings.get("NAME")
                test_settings["NAME"] = name
                try:
                    setup_databases(
                        verbosity=0, interactive=False, aliases={"default"}, serialized_aliases=()
                    )
                    session_tenants_ensure()
                finally:
                    test_settings["NAME"] = worker_name
                    connections.close_all()

            name = dbtemplate.worker_database(
                connection, build=build, createdb=django_db_createdb, run_id=dbtemplate.run_id()
            )
            connection.close()
            settings.DATABASES["default"]["NAME"] = connection.settings_dict["NAME"] = name
        else:
            setup_databases(
                verbosity=0,
                interactive=False,
                aliases={"default"},
                serialized_aliases=(),
                keepdb=not django_db_createdb,
            )
        session_tenants_ensure()
    yield
    if not django_db_keepdb:
        with django_db_blocker.unblock():
            connection.creation.destroy_test_db(original, verbosity=0)


def session_tenants_ensure() -> None:
    """The public tenant and the session tenants t1 and t2, created if missing."""
    from tenants.models import Creator
    from tenants.services import creator_create, public_tenant_ensure

    with contextlib.redirect_stdout(io.StringIO()):
        public_tenant_ensure(domain="localhost")
        for slug, host in TENANTS.items():
            if not Creator.objects.filter(slug=slug).exists():
                # A kept test database can hold the schema of a tenant whose row a flush
                # deleted: start that tenant afresh.
                with connection.cursor() as cursor:
                    cursor.execute(f'DROP SCHEMA IF EXISTS "{slug}" CASCADE')
                creator_create(
                    slug=slug,
                    display_name=f"Store {slug.upper()}",
                    domain=host,
                    owner_email=f"owner@{slug}.example",
                    password="owner-pass-123",
                )


def _creator(slug: str):
    from tenants.models import Creator

    return Creator.objects.get(slug=slug)  # public table: readable from any search_path


@pytest.fixture
def tenant(db):
    creator = _creator("t1")
    connection.set_tenant(creator)
    yield creator
    connection.set_schema_to_public()


@pytest.fixture
def other_tenant(db):
    return _creator("t2")


@pytest.fixture
def live_tenant(django_db_setup, django_db_blocker):
    """t1 with real commits (threads, servers, browsers).

    Afterwards everything a committing test can have written is undone, in both session
    tenants (a live server or a worker may write to t2 too): the app tables, sessions, the
    admin log and any user added since the test began, and the public outbox. So any subset
    of the suite passes after any other run on a kept test database.
    """
    with django_db_blocker.unblock():
        users_before = {slug: _max_user_id(slug) for slug in TENANTS}
        creator = _creator("t1")
        connection.set_tenant(creator)
        try:
            yield creator
        finally:
            committed_data_clear(users_before)


def _max_user_id(slug: str) -> int:
    from django.contrib.auth import get_user_model
    from django_tenants.utils import schema_context

    with schema_context(slug):
        return get_user_model().objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def committed_data_clear(users_before: dict[str, int]) -> None:
    """Undo what committing tests wrote in the session tenants (`users_before`: {slug: the
    highest user id to keep}) and in the public outbox."""
    from django.contrib.auth import get_user_model
    from django_tenants.utils import schema_context

    from core.models import OutboxMessage

    for slug, keep_up_to in users_before.items():
        truncate_tenant_tables(slug)
        with schema_context(slug):
            get_user_model().objects.filter(pk__gt=keep_up_to).delete()
    connection.set_schema_to_public()
    OutboxMessage.objects.all().delete()


def truncate_tenant_tables(schema: str) -> None:
    """Empty the product apps' tables, sessions and the admin log of one tenant schema, and
    start their ids again at 1.

    TRUNCATE of all ~60 tables costs 1.5 s (new files for every table and index), though a
    test writes to a handful: only the tables that hold a row are truncated (CASCADE takes
    the rows that point at them), and the id sequences a test moved (a rolled-back insert
    moves one too) are set back to their start: the same end state as truncating all of them.
    """
    from django.db import transaction

    tables = tenant_app_tables()
    every = ", ".join(f'"{schema}"."{t}"' for t in tables)
    with transaction.atomic(), connection.cursor() as cursor:
        # First the lock TRUNCATE takes on all of them: a request of the live server still
        # writing finishes first, so what it wrote is seen below and emptied too.
        cursor.execute(f"LOCK TABLE {every} IN ACCESS EXCLUSIVE MODE")
        cursor.execute(
            " UNION ALL ".join(f"""(SELECT '{t}' FROM "{schema}"."{t}" LIMIT 1)""" for t in tables)
        )
        holding = [row[0] for row in cursor.fetchall()]
        if holding:
            names = ", ".join(f'"{schema}"."{t}"' for t in holding)
            cursor.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        cursor.execute(
            """SELECT format('%%I.%%I', s.schemaname, s.sequencename), s.start_value
                 FROM pg_sequences s
                 JOIN pg_class seq ON seq.relname = s.sequencename
                 JOIN pg_namespace ns ON ns.oid = seq.relnamespace AND ns.nspname = s.schemaname
                 JOIN pg_depend d ON d.objid = seq.oid AND d.classid = 'pg_class'::regclass
                  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
                 JOIN pg_class tab ON tab.oid = d.refobjid
                WHERE s.schemaname = %s AND s.last_value IS NOT NULL
                  AND tab.relname = ANY(%s)""",
            [schema, tables],
        )
        for sequence, start in cursor.fetchall():
            cursor.execute("SELECT setval(%s, %s, false)", [sequence, start])
        # Loop failures name the store's records by id (core/loops.py): with the ids
        # restarted, a left-over row would quarantine the next test's record.
        cursor.execute('DELETE FROM "public"."core_loopfailure" WHERE schema_name = %s', [schema])


def tenant_app_tables() -> list[str]:
    """The tables truncate_tenant_tables empties: the product apps', sessions, the admin log
    (the owner user and permissions stay)."""
    from django.apps import apps
    from django.conf import settings

    tables = ["django_session", "django_admin_log"]
    for name in settings.TENANT_APPS:
        if name.startswith("django."):
            continue
        label = name.rsplit(".", 1)[-1]
        tables += [m._meta.db_table for m in apps.get_app_config(label).get_models()]
    return tables


@pytest.fixture(scope="session")
def stripe_api_base() -> str:
    return os.environ["STRIPE_API_BASE"]


@pytest.fixture
def fee_and_routing_reset(django_db_blocker):
    """For tests that commit (live_tenant): t1's fee and payout routing put back afterwards
    (the public schema's creators are not truncated between tests)."""
    from tenants.models import Creator

    yield
    with django_db_blocker.unblock():
        Creator.objects.filter(slug="t1").update(
            payout_account_ref="", fee_bps=None, fee_fixed=None
        )


@pytest.fixture
def disputing(stripe_api_base):
    """The local Stripe gateway with disputes stood in for (tests/payments/helpers.py
    `disputing_gateway`): a test sets what each dispute reads as."""
    from tests.payments import helpers as h

    yield from h.disputing_gateway(stripe_api_base)


@pytest.fixture(autouse=True)
def _reset_localstripe(request):
    """Clear localstripe's state before each test that talks to it."""
    if "stripe_api_base" in request.fixturenames or request.node.get_closest_marker("gateway"):
        req = urllib.request.Request(
            os.environ["STRIPE_API_BASE"] + "/_config/data", method="DELETE"
        )
        urllib.request.urlopen(req, timeout=5).close()
    yield


@pytest.fixture
def client_for():
    """A Django test client whose requests go to a given tenant host."""
    from django.test import Client

    def make(host: str) -> Client:
        return Client(HTTP_HOST=host)

    return make


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    yield
    try:
        cache.clear()
    except Exception:
        pass


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def test_database_url() -> str:
    """DATABASE_URL for another process (a worker) that must use this session's test database."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    return services.database_url(
        user=db["USER"] or "postgres",
        password=db["PASSWORD"] or "",
        host=db["HOST"] or "",
        port=db["PORT"] or None,
        name=db["NAME"],
    )


test_database_url.__test__ = False  # a helper test modules import, not a test


@pytest.fixture(scope="module")
def celery_worker_shared(django_db_setup, redis_url, tmp_path_factory):
    """One real Celery worker process for a module's tests (`celery_worker_process`)."""
    from config.celery_app import app
    from tests.worker_support import worker_start, worker_stop

    proc = worker_start(
        env={
            "DATABASE_URL": test_database_url(),
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": app.conf.broker_url,
        },
        log_path=tmp_path_factory.mktemp("worker") / "worker.log",
        name="test",
    )
    try:
        yield proc
    finally:
        worker_stop(proc)


@pytest.fixture(scope="session")
def standby(django_db_setup, django_db_blocker):
    """A real hot standby of the suite's server (tests/replica_support.py), one per test
    process: the dashboard's and the partner API's replica tests share it, since its base
    backup is the whole server. Skips where none can be started."""
    from tests.replica_support import StandbyUnavailable, standby_start

    db = connections["default"].settings_dict
    try:
        running = standby_start(db["HOST"], int(db["PORT"] or 5432))
    except StandbyUnavailable as exc:
        pytest.skip(f"no hot standby here: {exc}")
    yield running
    running.stop()


@pytest.fixture
def replica_alias(standby, settings):
    """The `replica` alias on the standby's copy of the test database, for this test, as
    DATABASE_REPLICA_URL would make it (core/replica.py)."""
    import copy

    from core import replica

    entry = copy.deepcopy(connections["default"].settings_dict)
    entry.update(HOST="127.0.0.1", PORT=str(standby.port), CONN_MAX_AGE=0)
    settings.DATABASES[replica.REPLICA] = entry  # the same dict `connections` reads
    settings.DATABASE_REPLICA_MAX_LAG = 5
    replica.replica_retry_now()
    yield entry
    connections[replica.REPLICA].close()
    del connections[replica.REPLICA]
    del settings.DATABASES[replica.REPLICA]
    replica.replica_retry_now()


@pytest.fixture
def celery_worker_process(celery_worker_shared, live_tenant):
    """A real Celery worker process on the real broker and the test database (started once per
    module); yields this test's view of it: `log_path`, and `log_from`, where the log stood
    when the test began (so a test reads only its own lines), and `poll()`.

    Tasks sent from this process go to the broker for the duration (not run eagerly).
    """
    from types import SimpleNamespace

    from config.celery_app import app

    proc = celery_worker_shared
    assert proc.poll() is None, proc.log_path.read_text(errors="replace")[-3000:]
    was_eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        yield SimpleNamespace(
            log_path=proc.log_path, log_from=proc.log_path.stat().st_size, poll=proc.poll
        )
    finally:
        app.conf.task_always_eager = was_eager


# One definition of the browser and live-server fixtures for every directory (see the module).
from tests.browser_support import browser, live_server_port, live_url, page  # noqa: E402,F401


@pytest.fixture
def media_root(settings, tmp_path):
    """Uploads go to a folder of this test's own (and are gone with it). django-tenants' storage
    caches the media root it first saw, so that cache is dropped on the way in and out."""
    from pathlib import Path

    from django.core.files.storage import default_storage
    from django.utils.functional import empty

    def forget():
        if default_storage._wrapped is empty:
            default_storage._setup()
        default_storage._wrapped.__dict__.pop("relative_media_root", None)

    settings.MEDIA_ROOT = str(tmp_path / "media")
    forget()
    yield Path(settings.MEDIA_ROOT)
    forget()  # the settings fixture then puts MEDIA_ROOT back


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep the call's report on the test: fixtures read it at teardown (the browser's
    `page` keeps a picture of a failed test's page)."""
    report = yield
    if report.when == "call":
        item.call_report = report
    return report
