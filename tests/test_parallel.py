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
