"""Cold stores and memory (issue 19): a store's first request after a restart against a warm
one, and what the warm state costs PostgreSQL backends and web workers (bench/README.md).

    .venv/bin/python -m bench.tenancy build --db storefront_bench_cold --creators 2000
    .venv/bin/python -m bench.cold --db storefront_bench_cold [--rounds 2] [--visits 3]

For each configuration, in alternated rounds: a fresh gunicorn (gthread, as the Procfile runs
it) so every database connection is new; wait until its workers are idle (warm-up done); then
GET `/` once per store in a shuffled order (**cold**: the store's first request after the
restart), once more (**second**), `--visits` more times unmeasured, and once more (**warm**).
Client-side wall time per request, 4 at a time. After the last pass: VmRSS and private memory
(smaps_rollup) of each web worker and of each PostgreSQL backend of the database (found in
pg_stat_activity), and how many backends the server opened in all (recycled connections).
Flushes the Redis database BENCH_REDIS (the benches' own, db 9 by default) before each run.

Configurations (CONFIGS below): `issue9` (sync workers, as bench.tenancy measured the 18 vs
4 ms), `main` (gthread 2 x 32, nothing warmed or retired: before this change), `shipped`
(gthread 2 x 32, warm-up, TENANT_SCHEMAS_PER_CONNECTION=--per-connection), `procwarm` (the
same without opening the threads' connections ahead, WEB_WARM_THREADS=0), and for memory
`bound4` / `unbound4` (4 threads a worker, so each connection serves most stores; retired
after --per-connection-small schemas, or never).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import redis

from bench.tenancy import PG, ROOT, Gunicorn, creator_hosts, say

# name: (gunicorn threads per worker, 0 for sync workers; environment). "per" stands for
# --per-connection, "small" for --per-connection-small.
CONFIGS = {
    # issue 9's servers: sync workers, nothing warmed, connections never retired
    "issue9": (0, {"WEB_WARM_ON_START": "0", "TENANT_SCHEMAS_PER_CONNECTION": "0"}),
    # the Procfile's gthread 2 x 32 as main ran it before this change
    "main": (32, {"WEB_WARM_ON_START": "0", "TENANT_SCHEMAS_PER_CONNECTION": "0"}),
    # as shipped: warm-up (the process and all 32 threads' connections), connections retired
    # (and replaced warm) after --per-connection schemas
    "shipped": (32, {"WEB_WARM_ON_START": "1", "TENANT_SCHEMAS_PER_CONNECTION": "per"}),
    # the same with the process warmed but no thread's connection opened ahead
    "procwarm": (
        32,
        {"WEB_WARM_ON_START": "1", "WEB_WARM_THREADS": "0", "TENANT_SCHEMAS_PER_CONNECTION": "per"},
    ),
    # memory: 4 threads a worker, so each connection sees most stores; bound vs none
    "bound4": (4, {"WEB_WARM_ON_START": "1", "TENANT_SCHEMAS_PER_CONNECTION": "small"}),
    "unbound4": (4, {"WEB_WARM_ON_START": "1", "TENANT_SCHEMAS_PER_CONNECTION": "0"}),
}


def visit(port: int, hosts: list[str], connections: int = 4) -> list[float]:
    """GET `/` once per host, `connections` at a time; each request's wall time in ms."""

    def run(part: list[str]) -> list[float]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        took = []
        for host in part:
            started = time.perf_counter()
            conn.request("GET", "/", headers={"Host": host})
            response = conn.getresponse()
            response.read()
            took.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                raise RuntimeError(f"{host}: HTTP {response.status}")
        conn.close()
        return took

    with ThreadPoolExecutor(connections) as pool:
        parts = pool.map(run, [hosts[i::connections] for i in range(connections)])
    return [t for part in parts for t in part]


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def memory(pid: int) -> dict[str, float]:
    """VmRSS, proportional (PSS: each shared page divided among the processes that map it)
    and private (unshared) memory of a process, in MB. A PostgreSQL backend's RSS counts
    every page of the server's shared memory it has touched (buffers, statistics), which
    every other backend counts too; PSS adds up to the machine's memory."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            out["rss_mb"] = int(line.split()[1]) / 1024
    private = pss = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            private += int(line.split()[1])
        elif line.startswith("Pss:"):
            pss = int(line.split()[1])
    out["private_mb"] = private / 1024
    out["pss_mb"] = pss / 1024
    return out


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def workers_of(server: Gunicorn) -> list[int]:
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text()
    return [int(pid) for pid in children.split()]


def wait_idle(server: Gunicorn, workers: int) -> None:
    """Until every worker exists and has used no CPU for half a second (warm-up finished)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pids = workers_of(server)
        if len(pids) == workers:
            before = [cpu_ticks(p) for p in pids]
            time.sleep(0.5)
            if [cpu_ticks(p) for p in pids] == before:
                return
        else:
            time.sleep(0.1)
    raise RuntimeError("workers did not settle")


def backends(db: str) -> list[tuple[int, str]]:
    with psycopg.connect(f"{PG}/postgres") as conn:
        return conn.execute(
            "SELECT pid, application_name FROM pg_stat_activity WHERE datname = %s",
            [db],
        ).fetchall()


def backends_opened(db: str) -> int:
    """Connections the server has accepted for `db` so far (pg_stat_database.sessions)."""
    with psycopg.connect(f"{PG}/postgres") as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        return conn.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = %s", [db]
        ).fetchone()[0]


def served_backends(pg: list[dict]) -> list[dict]:
    """The backends that served requests: not the processes' LISTEN connections (routing and
    page caches, named `…-listener` in application_name), which never open a store."""
    return [b for b in pg if not (b["app"] or "").endswith("-listener")]


def summary(took: list[float]) -> dict[str, float]:
    return {"p50_ms": pct(took, 50), "p99_ms": pct(took, 99), "max_ms": max(took)}


def one_run(db: str, name: str, hosts: list[str], opts) -> dict:
    threads, env = CONFIGS[name]
    per = {"per": str(opts.per_connection), "small": str(opts.per_connection_small)}
    env = {key: per.get(value, value) for key, value in env.items()}
    args = ("-c", "python:config.gunicorn")
    if threads:
        args += ("--worker-class", "gthread", "--threads", str(threads))
    # Every configuration starts from the same empty cache (the brand is cached per store
    # for an hour): the cold pass then also pays each store's cache misses, as after a flush.
    redis.Redis.from_url(os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/9")).flushdb()
    sessions_before = backends_opened(db)
    server = Gunicorn(db, "routed", workers=opts.workers, args=args, env=env)
    try:
        wait_idle(server, opts.workers)
        order = hosts[:]
        random.Random(1).shuffle(order)
        passes = {"cold": visit(server.port, order)}
        random.Random(2).shuffle(order)
        passes["second"] = visit(server.port, order)
        for n in range(opts.visits):
            random.Random(3 + n).shuffle(order)
            visit(server.port, order)
        random.Random(99).shuffle(order)
        passes["warm"] = visit(server.port, order)
        time.sleep(0.2)
        pg = [
            {"pid": pid, "app": app, **memory(pid)}
            for pid, app in backends(db)
            if Path(f"/proc/{pid}").exists()
        ]
        web = [{"pid": pid, **memory(pid)} for pid in workers_of(server)]
    finally:
        server.stop()
    result = {name: summary(took) for name, took in passes.items()}
    result["cold_vs_warm_p50"] = result["cold"]["p50_ms"] / result["warm"]["p50_ms"]
    result["cold_vs_warm_p99"] = result["cold"]["p99_ms"] / result["warm"]["p99_ms"]
    served = served_backends(pg)
    result["pg_backends"] = pg
    result["pg_max_rss_mb"] = max((b["rss_mb"] for b in served), default=0)
    result["pg_max_private_mb"] = max((b["private_mb"] for b in served), default=0)
    result["pg_max_pss_mb"] = max((b["pss_mb"] for b in served), default=0)
    result["web_workers"] = web
    result["backends_opened"] = backends_opened(db) - sessions_before
    say(
        f"{name}: cold p50/p99 {result['cold']['p50_ms']:.1f}/{result['cold']['p99_ms']:.1f} ms,"
        f" second {result['second']['p50_ms']:.1f}/{result['second']['p99_ms']:.1f},"
        f" warm {result['warm']['p50_ms']:.1f}/{result['warm']['p99_ms']:.1f};"
        f" cold/warm p99 {result['cold_vs_warm_p99']:.2f}x;"
        f" PG backend max RSS {result['pg_max_rss_mb']:.1f} MB"
        f" (private {result['pg_max_private_mb']:.1f}, PSS {result['pg_max_pss_mb']:.1f})"
        f" over {len(served)} open,"
        f" {result['backends_opened']} opened;"
        f" web RSS {', '.join(str(round(w['rss_mb'])) for w in web)} MB"
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--stores", type=int, default=0, help="the first N stores (0: all)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--visits", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--per-connection", type=int, default=100)  # as shipped
    parser.add_argument("--per-connection-small", type=int, default=200)
    parser.add_argument("--configs", default="issue9,main,shipped,procwarm,bound4,unbound4")
    opts = parser.parse_args(argv)
    hosts = creator_hosts(opts.db)
    if opts.stores:
        hosts = hosts[: opts.stores]
    names = opts.configs.split(",")
    say(
        f"{len(hosts)} stores in {opts.db}; {opts.rounds} round(s) of {names}; "
        f"{opts.workers} workers; --per-connection {opts.per_connection}, "
        f"--per-connection-small {opts.per_connection_small}"
    )
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for n in range(opts.rounds):
        for name in names if n % 2 == 0 else names[::-1]:
            runs[name].append(one_run(opts.db, name, hosts, opts))
    out = ROOT / ".local" / "bench-cold.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"stores": len(hosts), "opts": vars(opts), "runs": runs}, indent=2))
    say(f"results in {out}")
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
