"""Parallel runs (pytest-xdist, `bin/test -n N`): what each worker process must have for itself.

Loaded with `-p tests.parallel` (pyproject's addopts) so that it runs before pytest-django
reads the settings. In a worker (`PYTEST_XDIST_WORKER` = gw0, gw1, …) it gives the process:

- its own **localstripe**: tests clear the fake's state (`DELETE /_config/data`) before they
  use it, which would wipe another worker's payments mid-test;
- its own **Redis database** (`XDIST_REDIS_DB_BASE` + the worker's number, 8 + n unless set):
  each test ends by clearing the cache, which is `FLUSHDB`, and the broker shares the database;
- its own **media folder** (`MEDIA_ROOT` + `-gwN`).

The test database needs nothing here: pytest-django names it `test_<name>_gwN`, and
tests/conftest.py makes it a copy of the run's template (tests/dbtemplate.py).
Outside xdist this module does nothing.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

import pytest

DEFAULT_REDIS_DB_BASE = 8  # bin/test itself uses db 1; a session's other runs use 0-7


def redis_url_with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def worker_index(worker: str) -> int:
    return int(worker.removeprefix("gw"))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        worker_environment(worker)
    return (yield)


def worker_environment(worker: str) -> None:
    index = worker_index(worker)
    base = int(os.environ.get("XDIST_REDIS_DB_BASE", DEFAULT_REDIS_DB_BASE))
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):
        if os.environ.get(name, "").startswith("redis://") or name == "REDIS_URL":
            url = os.environ.get(name) or "redis://127.0.0.1:6379/0"
            os.environ[name] = redis_url_with_db(url, base + index)
    media = os.environ.get("MEDIA_ROOT", "/tmp/storefront-test-media")
    os.environ["MEDIA_ROOT"] = f"{media}-{worker}"
    api_base = os.environ.get("STRIPE_API_BASE", "")
    if api_base and urlsplit(api_base).hostname in ("127.0.0.1", "localhost"):
        from devtools import services

        os.environ.update(services.localstripe_env(own=True))
