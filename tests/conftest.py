"""Test infrastructure: tenants created once per session, each test in a rolled-back transaction.

Tenants `t1` and `t2` (hosts t1.localhost, t2.localhost) exist for the whole session. The
`tenant` fixture puts the connection in t1's schema; `other_tenant` is t2. `live_tenant`
gives committed data (for threads, a live server and a browser) and truncates t1's tables
afterwards. localstripe runs once per session on 127.0.0.1 and is cleared between tests.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pytest
from django.db import connection

from devtools import services

TENANTS = {"t1": "t1.localhost", "t2": "t2.localhost"}


def pytest_configure(config):
    if not os.environ.get("STRIPE_API_BASE"):
        os.environ.update(services.localstripe_env())
        from django.conf import settings

        for key in ("STRIPE_API_BASE", "STRIPE_JS_URL", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"):
            setattr(settings, key, os.environ[key])
    from django.conf import settings

    settings.STRIPE_WEBHOOK_SECRET = settings.STRIPE_WEBHOOK_SECRET or "whsec_test_secret"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    from tenants.models import Creator
    from tenants.services import creator_create, public_tenant_ensure

    with django_db_blocker.unblock():
        public_tenant_ensure(domain="localhost")
        for slug, host in TENANTS.items():
            if not Creator.objects.filter(slug=slug).exists():
                creator_create(
                    slug=slug,
                    display_name=f"Store {slug.upper()}",
                    domain=host,
                    owner_email=f"owner@{slug}.example",
                    password="owner-pass-123",
                )
    yield


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
    """t1 with real commits (threads, servers, browsers); its tables are emptied afterwards."""
    with django_db_blocker.unblock():
        creator = _creator("t1")
        connection.set_tenant(creator)
        yield creator
        truncate_tenant_tables(creator.schema_name)
        connection.set_schema_to_public()
        from core.models import OutboxMessage

        OutboxMessage.objects.all().delete()


def truncate_tenant_tables(schema: str) -> None:
    from django.apps import apps
    from django.conf import settings

    tables = []
    for label in ("storefront", "offers", "payments", "analytics"):
        if label in settings.TENANT_APPS:
            tables += [m._meta.db_table for m in apps.get_app_config(label).get_models()]
    if tables:
        names = ", ".join(f'"{schema}"."{t}"' for t in tables)
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


@pytest.fixture(scope="session")
def stripe_api_base() -> str:
    return os.environ["STRIPE_API_BASE"]


@pytest.fixture(autouse=True)
def _reset_localstripe(request):
    """Clear localstripe's state before each test that talks to it."""
    if "stripe_api_base" in request.fixturenames or request.node.get_closest_marker("gateway"):
        req = urllib.request.Request(os.environ["STRIPE_API_BASE"] + "/_config/data", method="DELETE")
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


@pytest.fixture
def celery_worker_process(live_tenant, redis_url, tmp_path):
    """A real Celery worker process on the real broker; yields its Popen."""
    env = dict(os.environ)
    env["CELERY_TASK_ALWAYS_EAGER"] = "false"
    from django.conf import settings

    db = settings.DATABASES["default"]
    env["DATABASE_URL"] = (
        f"postgres://{db['USER']}@{db['HOST'].replace('/', '%2F')}:{db['PORT'] or 5432}/{db['NAME']}"
        if db["HOST"]
        else env.get("DATABASE_URL", "")
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config.celery_app", "worker", "--pool", "solo",
         "--loglevel", "INFO", "--without-heartbeat", "--without-gossip", "--without-mingle"],
        env=env, stdout=open(tmp_path / "worker.log", "wb"), stderr=subprocess.STDOUT,
    )
    time.sleep(0.5)
    yield proc
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
