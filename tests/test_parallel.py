"""bin/test's parallel run: which runs go to several processes, and what each worker gets."""

from __future__ import annotations

import os

import pytest

from devtools.launch import parallel_args
from tests import parallel


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ([], {}, ["-n", "3", "--dist", "worksteal"]),
        (["--create-db"], {}, ["-n", "3", "--dist", "worksteal", "--create-db"]),
        ([], {"TEST_WORKERS": "4"}, ["-n", "4", "--dist", "worksteal"]),
        ([], {"TEST_WORKERS": "0"}, []),
        (["tests/payments", "-x"], {}, ["tests/payments", "-x"]),
        (["tests/test_health.py::test_x"], {}, ["tests/test_health.py::test_x"]),
        (["-p", "no:warnings"], {}, ["-n", "3", "--dist", "worksteal", "-p", "no:warnings"]),
        (["-k", "bump"], {}, ["-n", "3", "--dist", "worksteal", "-k", "bump"]),
        (["-n", "2"], {}, ["-n", "2"]),
        (["-n2"], {}, ["-n2"]),
        (["--numprocesses=2"], {}, ["--numprocesses=2"]),
    ],
)
def test_parallel_args(args, env, expected):
    assert parallel_args(args, env) == expected


@pytest.mark.parametrize(
    ("url", "db", "expected"),
    [
        ("redis://127.0.0.1:6379/1", 9, "redis://127.0.0.1:6379/9"),
        ("redis://127.0.0.1:6379", 8, "redis://127.0.0.1:6379/8"),
        ("redis://:pw@cache:6380/0?timeout=5", 10, "redis://:pw@cache:6380/10?timeout=5"),
    ],
)
def test_redis_url_with_db(url, db, expected):
    assert parallel.redis_url_with_db(url, db) == expected


def test_worker_environment(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/1")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:6379/1")
    monkeypatch.setenv("MEDIA_ROOT", "/tmp/media-x")
    monkeypatch.setenv("STRIPE_API_BASE", "https://api.stripe.example")  # not a local fake
    monkeypatch.delenv("XDIST_REDIS_DB_BASE", raising=False)
    parallel.worker_environment("gw2")
    assert os.environ["REDIS_URL"] == "redis://127.0.0.1:6379/10"
    assert os.environ["CELERY_BROKER_URL"] == "redis://127.0.0.1:6379/10"
    assert os.environ["MEDIA_ROOT"] == "/tmp/media-x-gw2"
    assert os.environ["STRIPE_API_BASE"] == "https://api.stripe.example"


def test_this_worker_is_on_its_own(settings):
    """In a parallel run, this process's Redis database and media folder are its own."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        pytest.skip("runs in a pytest-xdist worker (bin/test with no test paths)")
    index = parallel.worker_index(worker)
    base = int(os.environ.get("XDIST_REDIS_DB_BASE", parallel.DEFAULT_REDIS_DB_BASE))
    assert settings.REDIS_URL.endswith(f"/{base + index}")
    assert settings.CACHES["default"]["LOCATION"] == settings.REDIS_URL
    assert settings.CELERY_BROKER_URL == settings.REDIS_URL
    assert settings.MEDIA_ROOT.endswith(f"-{worker}")
    assert settings.STRIPE_API_BASE == os.environ["STRIPE_API_BASE"]
    assert os.path.exists(
        os.path.join(os.path.dirname(__file__), "..", ".local", "logs", f"localstripe-{worker}.log")
    )


def test_this_worker_has_a_copy_of_the_run_database_with_the_session_tenants(db):
    """A worker's test database is a copy of the run's template (tests/dbtemplate.py), made
    after the template had the migrations and the session tenants, their schemas, domains
    and owners."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django_tenants.utils import schema_context

    from tenants.models import Creator, Domain
    from tests import dbtemplate

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_database(), shobj_description(oid, 'pg_database')"
            " FROM pg_database WHERE datname = current_database()"
        )
        name, comment = cursor.fetchone()
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname IN ('t1', 't2') ORDER BY 1")
        assert [row[0] for row in cursor.fetchall()] == ["t1", "t2"]
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        assert name.endswith(f"_{worker}")
        base = name.removeprefix("test_").removesuffix(f"_{worker}")
        template = dbtemplate.template_name(base, dbtemplate.template_key())
        assert comment.startswith(f"copy of {template}")
    assert set(Creator.objects.values_list("slug", flat=True)) >= {"t1", "t2"}
    assert set(Domain.objects.values_list("domain", flat=True)) >= {"t1.localhost", "t2.localhost"}
    for slug in ("t1", "t2"):
        with schema_context(slug):
            assert get_user_model().objects.filter(email=f"owner@{slug}.example").exists()


def test_template_key_follows_the_migrations(tmp_path, monkeypatch):
    """A changed migration file gives another template name: a stale template is never used."""
    from tests import dbtemplate

    (tmp_path / "app" / "migrations").mkdir(parents=True)
    migration = tmp_path / "app" / "migrations" / "0001_initial.py"
    migration.write_text("operations = []\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "conftest.py").write_text("")
    monkeypatch.setattr(dbtemplate, "ROOT", tmp_path)
    before = dbtemplate.template_key()
    assert dbtemplate.template_key() == before
    migration.write_text("operations = ['changed']\n")
    assert dbtemplate.template_key() != before
