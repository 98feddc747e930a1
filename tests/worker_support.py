"""Start and stop real Celery worker processes for tests (one implementation for every suite)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


def worker_start(
    *,
    env: dict[str, str],
    log_path: Path,
    name: str,
    pool: str = "solo",
    concurrency: int | None = None,
    purge: bool = True,
) -> subprocess.Popen:
    """A `celery worker` on config.celery_app with `env` added to ours; returns once it is
    ready (its log says so), or fails the test with the log's tail."""
    full_env = dict(os.environ)
    full_env["CELERY_TASK_ALWAYS_EAGER"] = "false"
    full_env.update(env)
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config.celery_app",
        "worker",
        "--pool",
        pool,
        "--loglevel",
        "INFO",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "--hostname",
        f"{name}-{os.getpid()}-{time.time_ns()}@%h",
    ]
    if concurrency is not None:
        args += ["--concurrency", str(concurrency)]
    if purge:
        args.append("--purge")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    proc.log_path = log_path  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while "ready." not in log_path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            worker_stop(proc)
            pytest.fail("the Celery worker did not start:\n" + log_path.read_text()[-3000:])
        time.sleep(0.1)
    return proc


def worker_stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def broker_unreachable():
    """Point this process's Celery app at a port nobody listens on, then put it back."""
    from config.celery_app import app
    from devtools.services import free_port

    real = app.conf.broker_url
    app.conf.broker_url = f"redis://127.0.0.1:{free_port()}/0"
    app._pool = None
    app.amqp._producer_pool = None
    try:
        yield
    finally:
        app.conf.broker_url = real
        app._pool = None
        app.amqp._producer_pool = None


def wait_for(predicate, what: str, worker=None, timeout: float = 20.0):
    """Poll `predicate` every 0.1 s until it returns something true (returned), or fail the
    test after `timeout` with the tail of `worker`'s log (a started worker, or a log's Path)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    path = worker if isinstance(worker, Path) else getattr(worker, "log_path", None)
    tail = path.read_text(errors="replace")[-4000:] if path is not None else ""
    pytest.fail(f"timed out waiting for {what}\n{tail}")


def blocked_by(watcher, holder, query_like: str) -> int:
    """How many backends wait for a lock `holder` (a psycopg connection) holds, running a
    statement LIKE `query_like`. Only the holder's own waiters count: the cluster is shared
    with the rest of the suite, whose tests make waiters of their own on the same table."""
    return watcher.execute(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE %s = ANY(pg_blocking_pids(pid)) AND query LIKE %s",
        [holder.info.backend_pid, query_like],
    ).fetchone()[0]
