"""bench/cpu_split.py against real processes and the real PostgreSQL: each part's CPU lands in
its own column, backends that connect during the load are counted and ones that end are said."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from urllib.parse import quote

import psycopg
import pytest
from django.db import connection

from bench.cpu_split import CpuSplit

_BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\n"


def _server_and_db() -> tuple[str, str]:
    s = connection.settings_dict
    user, host = s["USER"] or "postgres", quote(s["HOST"] or "127.0.0.1", safe="")  # or a socket
    return f"postgresql://{user}@{host}:{s['PORT'] or 5432}", s["NAME"]


def _burn_here(seconds: float) -> None:
    exec(_BURN.format(s=seconds))


@pytest.fixture
def server_db(db):
    connection.ensure_connection()
    return _server_and_db()


def test_each_part_is_charged_to_its_own_process(server_db):
    server, db = server_db
    web = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    stub = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        with psycopg.connect(f"{server}/{db}", autocommit=True) as early:
            early.execute("SELECT 1")
            before = CpuSplit.take(web.pid, server, db, stub.pid)
            # A process outside every part burns 0.4 s, this one 0.3 s, the web and the stub
            # nothing; PostgreSQL's work is on a backend that connects during the load only.
            burner = subprocess.Popen([sys.executable, "-c", _BURN.format(s=0.4)])
            burner.wait()
            with psycopg.connect(f"{server}/{db}", autocommit=True) as late:
                early.execute("SELECT 1")
                late.execute("SELECT count(*) FROM generate_series(1, 3000000) a, (SELECT 1) b")
                _burn_here(0.3)
                spent = CpuSplit.take(web.pid, server, db, stub.pid) - before
    finally:
        for p in (web, stub):
            p.stdin.close()
            p.wait()

    parts = spent.parts
    assert parts["gunicorn"] < 0.1 and parts["stub"] < 0.1
    assert parts["generator"] >= 0.28  # this process: the 0.3 s burn
    assert parts["postgres"] >= 0.1, parts  # the late backend's generate_series
    assert spent.backends_lost == 0
    assert spent.machine >= parts["generator"] + parts["postgres"] + 0.35  # and the burner
    per = spent.per(10)
    assert per["generator_ms"] == pytest.approx(1000 * parts["generator"] / 10)
    assert "PostgreSQL" in spent.line(10, 2.0)


def test_a_backend_that_ended_during_the_load_is_said_not_silently_dropped(server_db):
    server, db = server_db
    gone = psycopg.connect(f"{server}/{db}", autocommit=True)
    gone.execute("SELECT 1")
    before = CpuSplit.take(os.getpid(), server, db, None)
    gone.close()
    deadline = time.monotonic() + 5
    while True:
        spent = CpuSplit.take(os.getpid(), server, db, None) - before
        if spent.backends_lost or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert spent.backends_lost >= 1
    assert "ended before the count" in spent.line(1, 1.0)
