"""Reads on a streaming replica under checkout load, and the primary's CPU they save: the
dashboard's (`--reads dashboard`, the default) or the partner API's lists (`--reads api`).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/storefront_bench_replica \
      .venv/bin/python -m bench.replica_load [--phases ABA] [--seconds 25] [--threads 16] \
        [--reads dashboard|api] [--dashboards 4] [--workers 2] [--gunicorn-threads 32] \
        [--gateway-ms 20] [--keep]

One database of its own (bench/harness.py: the `load.localhost` store) and a real hot standby
of the machine's PostgreSQL (tests/replica_support.py: pg_basebackup -R, own port), which
streams throughout. Each phase starts gunicorn afresh (production settings, gthread) and runs
the same load: `--threads` buyers through the checkout flow (stub gateway at `--gateway-ms`)
while `--dashboards` threads read back to back: each logged in as the store's owner, loading
/admin/analytics/dashboard/, or with `--reads api` each a partner with a read key of its own,
going round the API's lists (API_LISTS: orders, customers, events, subscriptions, transfers,
products; the first page of each, as an integration polling them would). Phase A runs
without a replica configured; phase B
with DATABASE_REPLICA_URL naming the bench database on the standby (`--phases ABA` repeats A
at the end: the store grows during the run and the machine is shared, so A is bracketed).

Per phase: paid checkouts/s, read requests/s and p50/p99; the read requests that
read on the replica (those the app did not log as falling back to the primary, and the
standby's own counters: transactions and tuples returned in the bench database); and the CPU
seconds of the primary's PostgreSQL backends serving the bench database (utime + stime from
/proc of the primary postmaster's children whose title names the database, sampled every
0.25 s; the walsender feeding the standby apart), per second and per paid checkout. Prints
ratios B/A; the standby is stopped and the database dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field

import psutil
import psycopg

from bench.harness import (
    ROOT,
    Client,
    Recorder,
    Run,
    address,
    admin_sql,
    buyer_flow,
    db_name_from_env,
    drive,
    say,
    tree_cpu_seconds,
)
from tests.replica_support import Standby, standby_start

DASHBOARD = "/admin/analytics/dashboard/"
API_LISTS = (
    "/api/v1/orders/",
    "/api/v1/customers/",
    "/api/v1/events/",
    "/api/v1/subscriptions/",
    "/api/v1/transfers/",
    "/api/v1/products/",
)
# One read key per reader thread, each allowed the most (partners.models.MAX_RATE_PER_MINUTE).
API_KEYS = r"""
from django_tenants.utils import schema_context
from partners.models import MAX_RATE_PER_MINUTE
from partners.services import api_key_create
with schema_context("SCHEMA"):
    for n in range(COUNT):
        print(api_key_create(name="bench %d" % n, scope="read",
                             rate_per_minute=MAX_RATE_PER_MINUTE).token)
"""
OWNER, OWNER_PASSWORD = "owner", "bench-pass-123"  # bench/harness.py SEED
FALLBACK_MARK = "reading from the primary"  # core.replica's log line for each fallback
KINDS = {
    "A": "no replica, reads",
    "B": "replica on the standby, reads",
    "C": "no replica, no reads (checkout only)",
}
NOUN = {"dashboard": "dashboard", "api": "API list"}
READ_NAME = {"dashboard": "dashboard", "api": "api_list"}  # the Recorder's name of a read


# --- pure helpers (tests/test_bench_replica_load.py) -------------------------------------------
def process_kind(title: str, db: str) -> str:
    """What a PostgreSQL server process is, from its title (update_process_title):
    `bench` for a backend of database `db` ("postgres: [<cluster_name>:] <user> <db> <host>
    <activity>"), `walsender`, `startup` (a standby's replay), `walreceiver`, `other` else."""
    parts = title.split()
    if len(parts) > 1 and parts[1].endswith(":"):  # cluster_name, e.g. Debian's "15/main:"
        del parts[1]
    if len(parts) < 2 or parts[0] != "postgres:":
        return "other"
    if parts[1] in ("walsender", "walreceiver", "startup"):
        return parts[1]
    if len(parts) >= 3 and parts[2] == db:
        return "bench"
    return "other"


@dataclass
class CpuAccount:
    """CPU seconds per process kind over a window, from cumulative per-process samples: a
    process alive at the start counts from its value then; one born later counts from zero;
    one that exits counts up to its last sample (at most one sampling interval lost)."""

    started_at: float
    first: dict[int, float] = field(default_factory=dict)
    last: dict[int, float] = field(default_factory=dict)
    kinds: dict[int, str] = field(default_factory=dict)

    def add(self, pid: int, kind: str, cpu: float, born: float) -> None:
        if pid not in self.first:
            self.first[pid] = 0.0 if born >= self.started_at else cpu
            self.kinds[pid] = kind
        self.last[pid] = cpu

    def by_kind(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, cpu in self.last.items():
            kind = self.kinds[pid]
            out[kind] = out.get(kind, 0.0) + cpu - self.first[pid]
        return out


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def ratio(b: float, a: float) -> float | None:
    return b / a if a else None


# --- measuring ---------------------------------------------------------------------------------
def postmaster_pid(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return psutil.Process(conn.execute("SELECT pg_backend_pid()").fetchone()[0]).ppid()


class CpuMeter:
    """Samples the CPU of one cluster's server processes on a thread until stopped."""

    def __init__(self, postmaster: int, db: str, *, everything: bool, interval: float = 0.25):
        self.postmaster, self.db, self.interval = psutil.Process(postmaster), db, interval
        self.everything = everything  # the processes of other databases and the aux ones too
        self.account = CpuAccount(started_at=time.time())
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> CpuMeter:
        self.account = CpuAccount(started_at=time.time())
        self.sample()
        self.thread.start()
        return self

    def sample(self) -> None:
        for proc in self.postmaster.children():
            try:
                kind = process_kind(" ".join(proc.cmdline()), self.db)
                if kind == "other" and not self.everything:
                    continue
                t = proc.cpu_times()
                self.account.add(proc.pid, kind, t.user + t.system, proc.create_time())
            except psutil.Error:
                pass

    def _loop(self) -> None:
        while not self.stopped.wait(self.interval):
            self.sample()

    def stop(self) -> dict[str, float]:
        self.stopped.set()
        self.thread.join(5)
        self.sample()
        return self.account.by_kind()


def db_stats(dsn: str, db: str) -> dict[str, int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit, tup_returned, tup_fetched FROM pg_stat_database "
            "WHERE datname = %s",
            [db],
        ).fetchone()
    return dict(zip(("xact_commit", "tup_returned", "tup_fetched"), row or (0, 0, 0), strict=True))


def wait_backends_gone(postmaster: int, db: str, timeout: float = 10) -> None:
    """Backends flush their statistics when they exit: wait for the database's to go."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [
            p
            for p in psutil.Process(postmaster).children()
            if process_kind(" ".join(p.cmdline()), db) == "bench"
        ]
        if not alive:
            return
        time.sleep(0.2)


# --- one phase ---------------------------------------------------------------------------------
def dashboard_login(client: Client) -> bool:
    client.request("admin_login_page", "GET", f"/admin/login/?next={DASHBOARD}")
    status, headers, _ = client.request(
        "admin_login",
        "POST",
        "/admin/login/",
        {"username": OWNER, "password": OWNER_PASSWORD, "next": DASHBOARD},
    )
    return status == 302 and "/login/" not in headers.get("Location", "")


def api_keys(run: Run, schema: str, count: int) -> list[str]:
    """`count` read keys of the bench store (one per reader thread: each has its own limit)."""
    out = run.manage("shell", "-c", API_KEYS.replace("SCHEMA", schema).replace("COUNT", str(count)))
    return out.split()[-count:]


def readers_open(port: int, args, recorder: Recorder, offset: int, keys: list[str]) -> list:
    """The reader threads' clients, each warmed up once (the dashboard: logged in, the page
    loaded; the API: each list read)."""
    clients = []
    for k in range(args.dashboards):
        where = address(offset + 1_900_000 + k)
        if args.reads == "api":
            client = Client(port, recorder, where, headers={"Authorization": f"Bearer {keys[k]}"})
            for path in API_LISTS:
                status, _, body = client.request("api_list", "GET", path)
                if status != 200:
                    raise RuntimeError(f"GET {path} answered {status}: {body[:200]!r}")
        else:
            client = Client(port, recorder, where)
            if not dashboard_login(client):
                raise RuntimeError(f"the owner could not log in: {recorder.errors[:3]}")
            client.request("dashboard", "GET", DASHBOARD)
        clients.append(client)
    return clients


def read_once(client: Client, reads: str, n: int) -> None:
    if reads == "api":
        client.request("api_list", "GET", API_LISTS[n % len(API_LISTS)])
    else:
        client.request("dashboard", "GET", DASHBOARD)


def phase(run: Run, standby: Standby, catalog: dict, args, n: int, name: str) -> dict:
    """One phase (module doc): `name` starts with its kind, A, B or C."""
    replica, dashboards = name[0] == "B", 0 if name[0] == "C" else args.dashboards
    primary_dsn = f"{run.server}/postgres"
    primary_pm, standby_pm = postmaster_pid(primary_dsn), postmaster_pid(standby.dsn())
    extra = {}
    if replica:
        extra["DATABASE_REPLICA_URL"] = f"postgres://postgres@127.0.0.1:{standby.port}/{run.db}"
    log = run.tmp / "gunicorn.log"
    log_from = log.stat().st_size if log.exists() else 0
    before = {"primary": db_stats(primary_dsn, run.db), "standby": db_stats(standby.dsn(), run.db)}
    port = run.start_gunicorn(args.workers, threads=args.gunicorn_threads, **extra)
    say(f"phase {name}: {KINDS[name[0]]} ({NOUN[args.reads]}); port {port}")

    # Warm-up: a few buyers, and each reader thread once (readers_open).
    warm = Recorder()
    offset = 2_000_000 * (n + 1)  # distinct buyer addresses in every phase (rate limits)
    drive(
        lambda i: buyer_flow(Client(port, warm, address(offset - i - 1)), catalog, offset - i - 1),
        threads=4,
        seconds=20,
        max_iterations=8,
    )
    dash_warm, dash = Recorder(), Recorder()
    clients = readers_open(port, args, dash_warm, offset, args.keys) if dashboards else []
    for client in clients:
        client.recorder = dash
    warm_reads = len(dash_warm.samples[READ_NAME[args.reads]])
    if warm.errors or dash_warm.errors:
        raise RuntimeError("warm-up failed: " + "\n".join((warm.errors + dash_warm.errors)[:5]))

    rec, lock = Recorder(), threading.Lock()
    outcomes = {"paid": 0, "accepted": 0, "buyers": 0}
    stop = threading.Event()

    def buyer(i: int) -> None:
        client = Client(port, rec, address(offset + i))
        try:
            result = buyer_flow(client, catalog, offset + i)
        finally:
            client.close()
        with lock:
            outcomes["buyers"] += 1
            outcomes["paid"] += result.paid == "paid"
            outcomes["accepted"] += result.accepted

    def reader(client: Client) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                read_once(client, args.reads, n)
            except Exception:  # noqa: BLE001 - recorded as 599
                pass

    readers = [threading.Thread(target=reader, args=(c,), daemon=True) for c in clients]
    primary_cpu = CpuMeter(primary_pm, run.db, everything=False).start()
    standby_cpu = CpuMeter(standby_pm, run.db, everything=True).start()  # all of it is ours
    gcpu = tree_cpu_seconds(run.gunicorn.pid)
    started = time.perf_counter()
    for t in readers:
        t.start()
    _, _ = drive(buyer, threads=args.threads, seconds=args.seconds, max_iterations=10**6)
    stop.set()
    for t in readers:
        t.join(60)
    elapsed = time.perf_counter() - started
    p_cpu, s_cpu = primary_cpu.stop(), standby_cpu.stop()
    gcpu = tree_cpu_seconds(run.gunicorn.pid) - gcpu
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    for c in clients:
        c.close()
    run.stop(run.gunicorn)
    wait_backends_gone(primary_pm, run.db)
    wait_backends_gone(standby_pm, run.db)
    after = {"primary": db_stats(primary_dsn, run.db), "standby": db_stats(standby.dsn(), run.db)}
    fallbacks = log.read_text(errors="replace")[log_from:].count(FALLBACK_MARK) if replica else 0

    empty = {"requests": 0, "rps": 0.0, "statuses": {}}
    d = dash.summary(elapsed).get(READ_NAME[args.reads], empty)
    reads_all = d["requests"] + warm_reads  # and those of the warm-up
    paid = outcomes["paid"]
    out = {
        "phase": name,
        "kind": name[0],
        "replica": replica,
        "seconds": elapsed,
        "load": load,
        **outcomes,
        "paid_per_s": paid / elapsed,
        "flow": rec.summary(elapsed),
        "flow_errors": rec.errors[:5],
        "reads": d,
        "read_errors": dash.errors[:5],
        "reads_with_warmup": reads_all,
        "read_fallbacks": fallbacks,
        "reads_on_replica": reads_all - fallbacks if replica else 0,
        "primary_cpu": p_cpu,
        "standby_cpu": s_cpu,
        "gunicorn_cpu_s": gcpu,
        "stats": {
            side: {k: after[side][k] - before[side][k] for k in after[side]}
            for side in ("primary", "standby")
        },
    }
    bench = p_cpu.get("bench", 0.0)
    out["primary_cpu_per_s"] = bench / elapsed
    out["primary_cpu_ms_per_paid"] = 1000 * bench / max(1, paid)
    st = out["stats"]["standby"]
    say(
        f"phase {name}: {paid} paid in {elapsed:.1f}s ({out['paid_per_s']:.1f}/s); "
        f"{NOUN[args.reads]} "
        f"{d['requests']} ({d['rps']:.1f}/s, p50 {d.get('p50_ms', 0):.0f} ms, p99 "
        f"{d.get('p99_ms', 0):.0f} ms, statuses {d['statuses']}); on the replica "
        f"{out['reads_on_replica']} of {reads_all} (fallbacks {fallbacks}; standby "
        f"{st['xact_commit']} transactions, {st['tup_returned']} tuples returned); primary "
        f"backends {bench:.2f} CPU s = {out['primary_cpu_per_s']:.3f}/s, "
        f"{out['primary_cpu_ms_per_paid']:.1f} ms per paid checkout; walsender "
        f"{p_cpu.get('walsender', 0):.2f} s; standby {sum(s_cpu.values()):.2f} s "
        f"{ {k: round(v, 2) for k, v in s_cpu.items()} }; gunicorn {gcpu:.1f} s (load {load})"
    )
    return out


def of_kind(phases: list[dict], kind: str) -> list[dict]:
    return [p for p in phases if p["kind"] == kind]


def mean(rows: list[dict], key) -> float:
    return sum(key(r) for r in rows) / len(rows) if rows else 0.0


def reads_cpu(phases: list[dict]) -> dict[str, float | None]:
    """The primary's CPU the reads (dashboards or API lists) cost: each kind's mean CPU s/s
    less what its paid checkouts cost at the checkout-only phases' (C) CPU per paid checkout,
    per read request; and the share of it phase B moved off the primary, 1 − B / A. Means over the
    phases of a kind, so ABCBA cancels a linear drift."""
    out: dict[str, float | None] = {"moved": None, "A_ms": None, "B_ms": None}
    c = of_kind(phases, "C")
    if not c or not of_kind(phases, "A"):
        return out
    per_paid = mean(c, lambda p: p["primary_cpu_per_s"]) / mean(c, lambda p: p["paid_per_s"])
    dash = {}
    for k in "AB":
        rows = of_kind(phases, k)
        if rows:
            cpu = mean(rows, lambda p: p["primary_cpu_per_s"] - per_paid * p["paid_per_s"])
            rps = mean(rows, lambda p: p["reads"]["rps"])
            dash[k] = cpu
            out[f"{k}_ms"] = 1000 * cpu / rps if rps else None
    if "B" in dash and dash["A"] > 0:
        out["moved"] = 1 - dash["B"] / dash["A"]
    return out


def table(phases: list[dict], noun: str = "dashboard") -> str:
    """The README's table: one column per phase, then B over the mean of the A phases."""
    a, b = of_kind(phases, "A"), of_kind(phases, "B")

    rows = [
        ("load average at the end", lambda p: p["load"], None),
        ("paid checkouts/s", lambda p: f"{p['paid_per_s']:.2f}", lambda p: p["paid_per_s"]),
        (
            f"{noun} requests/s",
            lambda p: f"{p['reads']['rps']:.2f}",
            lambda p: p["reads"]["rps"],
        ),
        (
            f"{noun} p50 ms",
            lambda p: f"{p['reads'].get('p50_ms', 0):.0f}",
            lambda p: p["reads"].get("p50_ms", 0),
        ),
        (
            f"{noun} p99 ms",
            lambda p: f"{p['reads'].get('p99_ms', 0):.0f}",
            lambda p: p["reads"].get("p99_ms", 0),
        ),
        (
            f"{noun} requests read on the replica (of all, warm-up included)",
            lambda p: f"{p['reads_on_replica']} of {p['reads_with_warmup']}",
            None,
        ),
        (
            "standby: transactions / tuples returned in the bench database",
            lambda p: (
                f"{p['stats']['standby']['xact_commit']:,} / "
                f"{p['stats']['standby']['tup_returned']:,}"
            ),
            None,
        ),
        (
            "primary: tuples returned in the bench database",
            lambda p: f"{p['stats']['primary']['tup_returned']:,}",
            lambda p: p["stats"]["primary"]["tup_returned"],
        ),
        (
            "primary backends' CPU s per s",
            lambda p: f"{p['primary_cpu_per_s']:.3f}",
            lambda p: p["primary_cpu_per_s"],
        ),
        (
            "primary backends' CPU ms per paid checkout",
            lambda p: f"{p['primary_cpu_ms_per_paid']:.1f}",
            lambda p: p["primary_cpu_ms_per_paid"],
        ),
        (
            "primary walsender CPU s",
            lambda p: f"{p['primary_cpu'].get('walsender', 0):.2f}",
            None,
        ),
        (
            "standby CPU s (all its processes)",
            lambda p: f"{sum(p['standby_cpu'].values()):.2f}",
            None,
        ),
        ("gunicorn CPU s", lambda p: f"{p['gunicorn_cpu_s']:.1f}", None),
    ]
    short = {"A": "no replica", "B": "replica", "C": "checkout only"}
    head = " | ".join(f"{p['phase']} ({short[p['kind']]})" for p in phases)
    lines = [f"| figure | {head} | B / A |", "|---" * (len(phases) + 2) + "|"]
    for label, cell, value in rows:
        r = ratio(mean(b, value), mean(a, value)) if value and a and b else None
        cells = " | ".join(str(cell(p)) for p in phases)
        lines.append(f"| {label} | {cells} | {'' if r is None else f'{r:.2f}'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--phases", default="ABCBA", help="a string of A, B and C (KINDS)")
    parser.add_argument("--seconds", type=float, default=25)
    parser.add_argument("--threads", type=int, default=16, help="buyers at a time")
    parser.add_argument(
        "--reads", choices=sorted(NOUN), default="dashboard", help="what the readers read"
    )
    parser.add_argument("--dashboards", type=int, default=4, help="reader threads")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--gunicorn-threads", type=int, default=32)
    parser.add_argument("--gateway-ms", type=float, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()
    if not args.phases or set(args.phases) - set(KINDS):
        parser.error("--phases is a string of A, B and C")
    server, db = db_name_from_env("storefront_bench_replica")
    redis = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/10")
    run = Run(server=server, db=db, redis_url=redis)
    host, _, port = server.rpartition("@")[2].partition(":")
    standby = None
    results: dict = {"args": dict(vars(args)), "cpus": os.cpu_count(), "phases": []}
    noun = NOUN[args.reads]
    try:
        catalog = run.create_database()
        args.keys = api_keys(run, catalog["schema"], args.dashboards) if args.reads == "api" else []
        say("starting a hot standby of the machine's PostgreSQL (pg_basebackup -R)")
        standby = standby_start(host, int(port or 5432))
        say(f"standby on 127.0.0.1:{standby.port}")
        run.start_stub(args.gateway_ms)
        for n, letter in enumerate(args.phases):
            name = letter if args.phases.count(letter) == 1 else f"{letter}{n + 1}"
            results["phases"].append(phase(run, standby, catalog, args, n, name))
        print()
        print(table(results["phases"], noun))
        results["reads_cpu"] = cost = reads_cpu(results["phases"])
        b = of_kind(results["phases"], "B")
        standby_ms = (
            1000
            * sum(p["standby_cpu"].get("bench", 0) for p in b)
            / max(1, sum(p["reads"]["requests"] for p in b))  # the timed window's
        )
        moved = "n/a" if cost["moved"] is None else f"{cost['moved']:.0%}"
        print(
            f"\nprimary backends' CPU per {noun} request (net of the checkouts at C's cost): "
            f"A {_ms(cost['A_ms'])}, B {_ms(cost['B_ms'])}; the standby's backends "
            f"{standby_ms:.1f} ms per {noun} request in B; share of the {noun} requests' "
            f"primary CPU moved to the replica, 1 − B / A: {moved}"
        )
    finally:
        suffix = "" if args.reads == "dashboard" else f"-{args.reads}"
        out = ROOT / ".local" / f"bench-replica-load{suffix}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(results, indent=2, default=str))
        say(f"results in {out}")
        run.close(drop=False)
        if standby is not None:
            standby.stop()
            say("standby stopped")
        if not args.keep:
            admin_sql(run.server, f'DROP DATABASE IF EXISTS "{run.db}" WITH (FORCE)')
            say(f"dropped database {run.db}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
