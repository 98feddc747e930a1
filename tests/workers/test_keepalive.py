"""bin/run keeps the Celery worker and beat running (devtools/keepalive.py): a process that
exits is started again with backoff; a requested stop stops it for good."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools import services
from tests.conftest import test_database_url

ROOT = Path(__file__).resolve().parents[2]


def _keepalive(command: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "devtools.keepalive", "--name", "t", "--", *command],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def _wait_for(log: Path, pattern: str, count: int, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        found = re.findall(pattern, log.read_text(errors="replace"))
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(30)


def test_a_killed_child_is_started_again_and_a_stop_is_never_answered_with_a_restart(tmp_path):
    log = tmp_path / "keepalive.log"
    proc = _keepalive([sys.executable, "-c", "import time; time.sleep(120)"], log)
    try:
        (first,) = _wait_for(log, r"started pid (\d+)", 1, 15)
        os.kill(int(first), signal.SIGKILL)
        pids = _wait_for(log, r"started pid (\d+)", 2, 15)
        assert pids[1] != first and _alive(int(pids[1]))
        assert "exited with status -9" in log.read_text()
        assert _stop(proc) == 128 + signal.SIGTERM
        assert not _alive(int(pids[1]))
        time.sleep(1.5)  # longer than the first backoff: nothing was started again
        assert len(re.findall(r"started pid", log.read_text())) == 2
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_child_that_keeps_dying_is_restarted_with_growing_delays(tmp_path):
    log = tmp_path / "keepalive.log"
    proc = _keepalive([sys.executable, "-c", "raise SystemExit(3)"], log)
    try:
        delays = _wait_for(log, r"status 3 after [\d.]+s; restarting in (\d+)s", 3, 20)
        assert [int(d) for d in delays[:3]] == [1, 2, 4]
    finally:
        _stop(proc)


def test_the_procfile_runs_the_worker_and_beat_under_keepalive_and_web_directly():
    lines = dict(
        line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()
    )
    for name in ("worker", "beat"):
        assert (
            lines[name]
            .strip()
            .startswith(
                f"python -m devtools.keepalive --name {name} -- celery -A config.celery_app"
            )
        )
    assert lines["web"].strip().startswith("gunicorn ")


@pytest.mark.slow
def test_the_procfiles_celery_worker_killed_under_the_launcher_comes_back_connected(
    tmp_path, redis_url, db
):
    worker_line = dict(
        line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )["worker"]
    command = worker_line.split(" -- ", 1)[1].split()
    command += [
        "--pool",
        "solo",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "--hostname",
        f"keepalive-{os.getpid()}@%h",
    ]
    command = [os.path.join(os.path.dirname(sys.executable), "celery"), *command[1:]]
    env = dict(
        os.environ,
        CELERY_TASK_ALWAYS_EAGER="false",
        DATABASE_URL=test_database_url(),
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=redis_url,
        DJANGO_SETTINGS_MODULE="config.settings.test",
    )
    env["PATH"] = os.pathsep.join([*services.PATH_PREFIX, env.get("PATH", "")])
    log = tmp_path / "worker.log"
    proc = _keepalive(command, log, env=env)
    try:
        _wait_for(log, r"ready\.", 1, 45)
        (first,) = _wait_for(log, r"started pid (\d+)", 1, 1)
        os.kill(int(first), signal.SIGKILL)
        _wait_for(log, r"ready\.", 2, 45)  # a new worker, connected and consuming
        (_, second) = _wait_for(log, r"started pid (\d+)", 2, 1)
        assert _alive(int(second)) and not _alive(int(first))
    finally:
        if proc.poll() is None:
            _stop(proc)


def _unit(name: str) -> dict[str, str]:
    values: dict[str, str] = {}
    text = (ROOT / "deploy" / "systemd" / name).read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


@pytest.mark.parametrize(
    "name, command",
    [
        ("storefront-web.service", "gunicorn config.wsgi"),
        ("storefront-worker.service", "celery -A config.celery_app worker"),
        ("storefront-beat.service", "celery -A config.celery_app beat"),
    ],
)
def test_production_ships_a_unit_that_restarts_each_process_whenever_it_exits(name, command):
    unit = _unit(name)
    assert unit["Restart"] == "always" and int(unit["RestartSec"]) > 0
    assert command in unit["ExecStart"]
    assert "config.settings.production" in unit["Environment"]
    if name != "storefront-web.service":
        assert unit["StartLimitIntervalSec"] == "0"  # never given up on
    assert name in (ROOT / "deploy" / "systemd" / "storefront.target").read_text()
