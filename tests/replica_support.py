"""A real PostgreSQL hot standby of the machine's server, for the read-replica tests.

`standby_start()` takes a base backup of the server the suite uses (`pg_basebackup -R`, so the
copy streams the primary's WAL from then on) into a folder of the test run, starts it on a free
port as a hot standby and returns it; `standby.stop()` stops it and removes the folder. The
server must accept replication connections from loopback; if its only rules for loopback are
`trust` for every database (as on these machines), one for `replication` is added beside them,
at the same trust, and the configuration reloaded. Otherwise, or without the PostgreSQL
server binaries (embedded PostgreSQL), `StandbyUnavailable` says why.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from devtools.services import free_port


class StandbyUnavailable(Exception):
    pass


@dataclass
class Standby:
    folder: Path
    port: int
    pg_bin: Path

    def stop(self) -> None:
        _as_postgres(
            [
                str(self.pg_bin / "pg_ctl"),
                "-D",
                str(self.folder / "data"),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            check=False,
        )
        # The copy is the whole server, every database on it (over a GB on a shared
        # machine; removing it took 50-76 s there): a process of its own removes it, which
        # the test run does not wait for. It outlives the run if need be.
        subprocess.run(
            ["sh", "-c", 'rm -rf -- "$0" </dev/null >/dev/null 2>&1 &', str(self.folder)],
            check=True,
            start_new_session=True,
        )

    def pause_replay(self, paused: bool) -> None:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(
                "SELECT pg_wal_replay_pause()" if paused else "SELECT pg_wal_replay_resume()"
            )

    @contextmanager
    def replay_paused(self) -> Iterator[None]:
        """The standby receives WAL but applies none of it inside the block."""
        self.pause_replay(True)
        try:
            yield
        finally:
            self.pause_replay(False)

    def shut_down(self) -> None:
        """Stop the server (fast: its sessions are ended); `start_again()` brings it back."""
        self._pg_ctl("-m", "fast", "stop")

    def start_again(self) -> None:
        self._pg_ctl("-l", str(self.folder / "standby.log"), "-t", "60", "start")
        _in_recovery(self)

    def _pg_ctl(self, *args: str) -> None:
        _as_postgres([str(self.pg_bin / "pg_ctl"), "-D", str(self.folder / "data"), "-w", *args])

    def terminate(self, pid: int) -> None:
        """End the standby's backend `pid` (as an operator would), waiting until it is gone."""
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            ended = conn.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone()[0]
        assert ended, f"backend {pid} was not terminated"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_basebackup"))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("pg_basebackup")
    if which and shutil.which("pg_ctl"):
        return Path(which).parent
    raise StandbyUnavailable("no PostgreSQL server binaries (pg_basebackup, pg_ctl) here")


def _as_postgres(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if check and result.returncode:
        raise StandbyUnavailable(f"{' '.join(cmd)} failed: {result.stderr.strip()[-500:]}")
    return result


def _replication_allowed(primary: str) -> None:
    with psycopg.connect(primary, autocommit=True) as conn:
        rules = conn.execute(
            "SELECT type, database, address, auth_method FROM pg_hba_file_rules"
        ).fetchall()
        if any("replication" in (db or []) and auth == "trust" for _, db, _, auth in rules):
            return
        loopback_trust = any(
            kind == "host" and db == ["all"] and addr == "127.0.0.1" and auth == "trust"
            for kind, db, addr, auth in rules
        )
        hba_file = conn.execute("SHOW hba_file").fetchone()[0]
        if not loopback_trust or not os.access(hba_file, os.W_OK):
            raise StandbyUnavailable(
                "the server does not trust replication from loopback, and the test may not "
                f"add it ({hba_file})"
            )
        with open(hba_file, "a") as hba:
            hba.write(
                "\n# added by the storefront tests (tests/replica_support.py)\n"
                "host replication all 127.0.0.1/32 trust\n"
            )
        conn.execute("SELECT pg_reload_conf()")


# A hot standby refuses to start with any of these below the primary's (PostgreSQL's "recovery
# aborted because of insufficient parameter settings"): it copies them.
_AT_LEAST_THE_PRIMARYS = (
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
)


def _limits_of(primary: str) -> str:
    with psycopg.connect(primary, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
            [list(_AT_LEAST_THE_PRIMARYS)],
        ).fetchall()
    return "".join(f"{name} = {int(setting)}\n" for name, setting in rows)


def standby_start(host: str, port: int) -> Standby:
    pg_bin = _pg_bin()
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise StandbyUnavailable("no postgres system user to run the standby") from exc
    primary = f"host={host or '127.0.0.1'} port={port or 5432} user=postgres dbname=postgres"
    _replication_allowed(primary)
    folder = Path(tempfile.mkdtemp(prefix="sf-standby-"))
    standby = Standby(folder=folder, port=free_port(), pg_bin=pg_bin)
    try:
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        _as_postgres(
            [
                str(pg_bin / "pg_basebackup"),
                "-h",
                host or "127.0.0.1",
                "-p",
                str(port or 5432),
                "-U",
                "postgres",
                "-D",
                str(folder / "data"),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",  # a throwaway copy: no fsync of every file
                "--no-manifest",  # nor a checksum of every file for pg_verifybackup
            ]
        )
        config = (
            f"port = {standby.port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{folder}'\nhot_standby = on\nfsync = off\n"
            "shared_buffers = 32MB\nhot_standby_feedback = on\n" + _limits_of(primary)
        )
        hba = "local all all trust\nhost all all 127.0.0.1/32 trust\n"
        for name, text in (("postgresql.conf", config), ("pg_hba.conf", hba)):
            path = folder / "data" / name
            path.write_text(text)
            if os.geteuid() == 0:
                shutil.chown(path, "postgres", "postgres")
        _as_postgres(
            [
                str(pg_bin / "pg_ctl"),
                "-D",
                str(folder / "data"),
                "-l",
                str(folder / "standby.log"),
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        _in_recovery(standby)
        return standby
    except BaseException:
        standby.stop()
        raise


def _in_recovery(standby: Standby) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(standby.dsn(), autocommit=True) as conn:
                if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    return
        except psycopg.OperationalError:
            pass
        if time.monotonic() > deadline:
            raise StandbyUnavailable("the standby did not come up in recovery")
        time.sleep(0.2)


@dataclass
class ReplicaFault:
    """What `replica_fails_at` saw: the statements the replica connection was sent (the one
    it failed at included) and whether the fault was made."""

    statements: list[str]
    made: bool = False


@contextmanager
def replica_fails_at(
    standby: Standby, at: Callable[[int, str], bool], how: str = "terminate"
) -> Iterator[ReplicaFault]:
    """The replica connection fails for real just before the first statement for which
    `at(n, sql)` holds (n counts from 1, `SET search_path` included): its backend is ended
    on the standby (`pg_terminate_backend`), or the standby is shut down (how="shutdown",
    started again on leaving). Installed outside the code under test, so the failure comes
    from the server, through every execute wrapper the code itself installs."""
    from django.db import connections

    from core import replica

    fault = ReplicaFault(statements=[])

    def wrapper(execute, sql, params, many, context):
        fault.statements.append(sql)
        if not fault.made and at(len(fault.statements), sql):
            fault.made = True
            if how == "shutdown":
                standby.shut_down()
            else:
                standby.terminate(context["connection"].connection.info.backend_pid)
        return execute(sql, params, many, context)

    try:
        with connections[replica.REPLICA].execute_wrapper(wrapper):
            yield fault
    finally:
        if how == "shutdown" and fault.made:
            standby.start_again()
