"""Tenancy at speed, measured in one run against stock django-tenants (see bench/README.md).

    .venv/bin/python -m bench.tenancy [--creators 1000] [--scale 10000] [--seconds 10]
    .venv/bin/python -m bench.tenancy build --db storefront_bench_h9b --creators 10000
    .venv/bin/python -m bench.tenancy latency --small storefront_bench_h9a \
        --large storefront_bench_h9b [--rounds 3]
    .venv/bin/python -m bench.tenancy steady --small storefront_bench_h9a \
        --large storefront_bench_h9b [--rounds 10 --seconds 8 --visits 6]
    .venv/bin/python -m bench.tenancy pool [--creators 1000 --jobs 8]
    .venv/bin/python -m bench.tenancy drop --db storefront_bench_h9b

`steady` keeps both servers up and warm and alternates short runs between them; `pool` times
N sign-ups cloning, N spares made ahead and N sign-ups taking them. `build` makes a
database with N creators through the bulk path (`create_creators`) and keeps
it; `latency` measures the storefront page over every host of a small and a large database,
alternating between them round by round (other sessions share the machine, so its load drifts:
alternating puts both sizes under the same drift), and reports the medians and their ratio.

Everything happens in a database of its own (storefront_bench by default), dropped at the end.
Needs PostgreSQL on 127.0.0.1:5432 (or BENCH_PG), `wrk` and gunicorn. Prints each figure as
it goes and a Markdown table at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
results: dict[str, object] = {}


def say(msg: str) -> None:
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"[bench {time.strftime('%H:%M:%S')} load {load}] {msg}", flush=True)


def env_for(db: str, mode: str = "routed", new_migration: bool = False) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        BENCH_MODE=mode,
        DATABASE_URL=f"{PG}/{db}",
        REDIS_URL=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/9"),
        PYTHONPATH=str(ROOT),
    )
    env.pop("BENCH_NEW_MIGRATION", None)
    if new_migration:
        env["BENCH_NEW_MIGRATION"] = "1"
    return env


def manage(
    db: str, *args: str, mode: str = "routed", new_migration: bool = False, check: bool = True
) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(
        [PY, "manage.py", *args],
        cwd=ROOT,
        env=env_for(db, mode, new_migration),
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    if check and proc.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed, proc.stdout + proc.stderr


def admin_sql(sql: str) -> None:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def write_csv(path: Path, numbers: Iterable[int]) -> None:
    with path.open("w") as f:
        f.write("slug,display_name,domain,owner_email\n")
        for i in numbers:
            f.write(f"bench-{i},Bench {i},bench-{i}.localhost,owner{i}@example.com\n")


def creator_hosts(db: str) -> list[str]:
    with psycopg.connect(f"{PG}/{db}") as conn:
        rows = conn.execute(
            "SELECT d.domain FROM tenants_domain d JOIN tenants_creator c ON c.id = d.tenant_id "
            "WHERE c.schema_name <> 'public' ORDER BY d.id"
        ).fetchall()
    return [row[0] for row in rows]


def bench_numbers_missing(slugs: list[str], creators: int) -> list[int]:
    """The numbers i in 1..creators with no `bench-i` among `slugs`: what a resumed build
    still has to make (a creator is all-or-nothing, so an interrupted chunk leaves gaps, not
    half-made stores)."""
    have = {int(slug[6:]) for slug in slugs if re.fullmatch(r"bench-\d+", slug)}
    return [i for i in range(1, creators + 1) if i not in have]


def db_exists(db: str) -> bool:
    with psycopg.connect(f"{PG}/postgres") as conn:
        return bool(conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone())


def bench_slugs(db: str) -> list[str]:
    with psycopg.connect(f"{PG}/{db}") as conn:
        rows = conn.execute("SELECT slug FROM tenants_creator WHERE slug LIKE 'bench-%'")
        return [row[0] for row in rows.fetchall()]


def provision(db: str, tmp: Path, first: int, last: int, jobs: int) -> tuple[float, str]:
    return provision_numbers(db, tmp, range(first, last + 1), jobs)


def provision_numbers(db: str, tmp: Path, numbers: Iterable[int], jobs: int) -> tuple[float, str]:
    path = tmp / "creators.csv"
    write_csv(path, numbers)
    # Without the bench migration: the "one new migration" pass must find it missing.
    return manage(db, "create_creators", str(path), "--jobs", str(jobs))


# --- HTTP ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    def __init__(
        self,
        db: str,
        mode: str,
        workers: int = 2,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                str(Path(PY).parent / "gunicorn"),
                "config.wsgi",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(workers),
                "--access-logfile",
                "/dev/null",
                "--log-level",
                "warning",
                *args,
            ],
            cwd=ROOT,
            env={**env_for(db, mode), **(env or {})},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError("gunicorn did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def wrk(
    port: int,
    path: str,
    *,
    host: str | None = None,
    hosts_file: Path | None = None,
    seconds: int,
    connections: int = 8,
    threads: int = 2,
) -> dict:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    env = dict(os.environ)
    if hosts_file:
        cmd += ["-s", str(ROOT / "bench" / "random_host.lua")]
        env["BENCH_HOSTS"] = str(hosts_file)
    if host:
        cmd += ["-H", f"Host: {host}"]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for pct, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M):
        lat[f"p{pct}_ms"] = float(value) * _UNITS[unit]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{non2xx.group(1)} error responses:\n{out}")
    return {"rps": rps, **lat}


def throughput(db: str, seconds: int) -> None:
    """The one-query JSON view: routed, stock-routed and without tenancy, three rounds."""
    runs: dict[str, list[float]] = {"plain": [], "routed": [], "stock": []}
    for _ in range(3):  # alternated: a busy machine drifts, so compare best with best
        for mode in ("plain", "routed", "stock"):
            server = Gunicorn(db, mode)
            try:
                wrk(server.port, "/bench/one-query/", host="bench-1.localhost", seconds=2)
                r = wrk(server.port, "/bench/one-query/", host="bench-1.localhost", seconds=seconds)
            finally:
                server.stop()
            runs[mode].append(r["rps"])
            say(f"throughput {mode}: {r['rps']:.0f} req/s")
    best = {mode: max(values) for mode, values in runs.items()}
    results["throughput"] = {
        "runs": runs,
        "best": best,
        "routed_vs_plain": best["routed"] / best["plain"],
        "stock_vs_plain": best["stock"] / best["plain"],
    }
    say(
        f"routed/plain = {best['routed'] / best['plain']:.1%}, "
        f"stock/plain = {best['stock'] / best['plain']:.1%}"
    )


def visit_each(port: int, hosts: list[str], connections: int = 4, times: int = 1) -> float:
    """GET `/` `times` times per host (4 at a time, shuffled): every store opened by this
    server, and with a few rounds by each of its workers (which one accepts is up to chance)."""
    import http.client
    import random
    from concurrent.futures import ThreadPoolExecutor

    hosts = [h for _ in range(times) for h in hosts]
    random.Random(7).shuffle(hosts)

    def visit(part: list[str]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for host in part:
            conn.request("GET", "/", headers={"Host": host})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"{host}: HTTP {response.status}")
        conn.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(visit, [hosts[i::connections] for i in range(connections)]))
    return time.perf_counter() - started


def storefront_latency(
    db: str, label: str, hosts: list[str], tmp: Path, seconds: int, visit_first: int = 0
) -> dict:
    """`/` over `hosts` (each request a random one), 4 connections: a bounded closed loop.

    With `visit_first`, every host is opened once before the warm-up, as on a server that has
    been up for a while: the first GET of a store writes its settings row, and each worker's
    database connection caches a schema's relations the first time it touches them.
    """
    hosts_file = tmp / f"hosts-{label}.txt"
    hosts_file.write_text("\n".join(hosts) + "\n")
    server = Gunicorn(db, "routed")
    try:
        if visit_first:
            took = visit_each(server.port, hosts, times=visit_first)
            say(f"visited each of {len(hosts)} hosts {visit_first}x in {took:.1f}s")
        # Warm-up as long as the run: worker start-up, routes and relation caches fill.
        wrk(server.port, "/", hosts_file=hosts_file, seconds=seconds, connections=4)
        r = wrk(server.port, "/", hosts_file=hosts_file, seconds=seconds, connections=4)
    finally:
        server.stop()
    results[f"storefront_{label}"] = r
    say(
        f"storefront {label}: p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
        f"{r['rps']:.0f} req/s"
    )
    return r


def latency_compare(
    small: str, large: str, rounds: int, seconds: int, tmp: Path, visit_first: int = 0
) -> dict:
    """Storefront p50/p99 over every host of `small` and of `large`, alternated per round."""
    sizes = {"small": creator_hosts(small), "large": creator_hosts(large)}
    say(
        f"latency: {len(sizes['small'])} creators ({small}) vs "
        f"{len(sizes['large'])} creators ({large}), {rounds} alternated rounds"
    )
    runs: dict[str, list[dict]] = {"small": [], "large": []}
    for n in range(rounds):
        order = ("small", "large") if n % 2 == 0 else ("large", "small")
        for size in order:
            db = small if size == "small" else large
            r = storefront_latency(db, f"{size}_{n}", sizes[size], tmp, seconds, visit_first)
            r["load"] = os.getloadavg()[0]
            runs[size].append(r)

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    summary = {
        size: {
            "creators": len(sizes[size]),
            "p50_ms": median([r["p50_ms"] for r in runs[size]]),
            "p99_ms": median([r["p99_ms"] for r in runs[size]]),
            "runs": runs[size],
        }
        for size in runs
    }
    summary["p50_ratio"] = summary["large"]["p50_ms"] / summary["small"]["p50_ms"]
    summary["p99_ratio"] = summary["large"]["p99_ms"] / summary["small"]["p99_ms"]
    results["latency" + ("_visited" if visit_first else "")] = summary
    say(
        f"storefront p50 {summary['small']['p50_ms']:.2f} → {summary['large']['p50_ms']:.2f} ms "
        f"({summary['p50_ratio']:.0%}), p99 {summary['small']['p99_ms']:.2f} → "
        f"{summary['large']['p99_ms']:.2f} ms ({summary['p99_ratio']:.0%})"
    )
    return summary


def latency_steady(
    small: str, large: str, rounds: int, seconds: int, visits: int, tmp: Path
) -> dict:
    """Both servers up at once and warm, then short runs alternated between them.

    A server that has been up a while has opened every store on each worker's connection; the
    per-round restarts of `latency_compare` measure mostly warming up. Here each server opens
    every store `visits` times (shuffled, so each of its 2 workers sees nearly every store),
    and the measured runs alternate small/large `rounds` times: the machine's drift (other
    tenants of the host, the checkpointer) falls on both alike. Medians of the runs' p50/p99.
    """
    sizes = {"small": creator_hosts(small), "large": creator_hosts(large)}
    dbs = {"small": small, "large": large}
    say(
        f"steady latency: {len(sizes['small'])} creators ({small}) vs {len(sizes['large'])} "
        f"({large}); each store opened {visits}x, then {rounds} alternated {seconds}s runs"
    )
    servers, files = {}, {}
    try:
        for size in ("small", "large"):
            files[size] = tmp / f"hosts-steady-{size}.txt"
            files[size].write_text("\n".join(sizes[size]) + "\n")
            servers[size] = Gunicorn(dbs[size], "routed")
            took = visit_each(servers[size].port, sizes[size], times=visits)
            say(f"{size}: opened each of {len(sizes[size])} stores {visits}x in {took:.1f}s")
        for size in ("small", "large"):  # warm-up runs, not counted
            wrk(servers[size].port, "/", hosts_file=files[size], seconds=seconds, connections=4)
        runs: dict[str, list[dict]] = {"small": [], "large": []}
        for n in range(rounds):
            for size in ("small", "large") if n % 2 == 0 else ("large", "small"):
                r = wrk(
                    servers[size].port, "/", hosts_file=files[size], seconds=seconds, connections=4
                )
                r["load"] = os.getloadavg()[0]
                runs[size].append(r)
                say(
                    f"  {size} run {n}: p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
                    f"{r['rps']:.0f} req/s"
                )
    finally:
        for server in servers.values():
            server.stop()

    def median(values: list[float]) -> float:
        values = sorted(values)
        mid = len(values) // 2
        return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2

    summary = {
        size: {
            "creators": len(sizes[size]),
            "p50_ms": median([r["p50_ms"] for r in runs[size]]),
            "p99_ms": median([r["p99_ms"] for r in runs[size]]),
            "runs": runs[size],
        }
        for size in runs
    }
    summary["p50_ratio"] = summary["large"]["p50_ms"] / summary["small"]["p50_ms"]
    summary["p99_ratio"] = summary["large"]["p99_ms"] / summary["small"]["p99_ms"]
    results["latency_steady"] = summary
    say(
        f"steady storefront p50 {summary['small']['p50_ms']:.2f} → "
        f"{summary['large']['p50_ms']:.2f} ms ({summary['p50_ratio']:.0%}), p99 "
        f"{summary['small']['p99_ms']:.2f} → {summary['large']['p99_ms']:.2f} ms "
        f"({summary['p99_ratio']:.0%})"
    )
    return summary


# --- stock baselines (small samples, extrapolated; stock at full size takes many minutes) ---
STOCK_CREATE = """
import time
from django.db import connection
from django_tenants.models import TenantMixin
from tenants.models import Creator, Domain
Creator.create_schema = TenantMixin.create_schema  # stock: CREATE SCHEMA + every migration
n = {n}
t = time.perf_counter()
for i in range(n):
    c = Creator(schema_name=f"stock_{{i}}", slug=f"stock-{{i}}", display_name="S",
                owner_email="s@example.com")
    c.save(verbosity=0)
    Domain.objects.create(domain=f"stock-{{i}}.localhost", tenant=c, is_primary=True)
print("PER", (time.perf_counter() - t) / n)
for c in Creator.objects.filter(slug__startswith="stock-"):
    c.delete(force_drop=True)
"""

STOCK_MIGRATE = """
import time
from django.core.management import call_command
from tenants.models import Creator
schemas = list(Creator.objects.filter(slug__startswith="bench-").order_by("id")
               .values_list("schema_name", flat=True)[:{n}])
t = time.perf_counter()
for schema in schemas:  # what `migrate_schemas` does per tenant (standard executor)
    call_command("migrate_schemas", schema_name=schema, interactive=False, verbosity=0)
print("PER", (time.perf_counter() - t) / len(schemas))
"""


def stock_per(db: str, code: str, mode: str = "stock") -> float:
    _, out = manage(db, "shell", "-c", code, mode=mode)
    return float(re.search(r"PER ([\d.e-]+)", out).group(1))


# --- the run ---------------------------------------------------------------------------------
def db_create(db: str) -> None:
    if db in ("storefront", "test_storefront"):
        raise SystemExit("refusing to benchmark in a shared database")
    admin_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    admin_sql(f'CREATE DATABASE "{db}"')
    manage(db, "migrate_schemas", "--shared", "--noinput")
    manage(
        db,
        "shell",
        "-c",
        "from tenants.services import public_tenant_ensure; "
        "public_tenant_ensure(domain='localhost')",
    )


def spare_count(db: str) -> int:
    with psycopg.connect(f"{PG}/{db}") as conn:
        return conn.execute("SELECT count(*) FROM tenants_spareschema").fetchone()[0]


def pool_run(db: str, n: int, jobs: int, stock_sample: int, tmp: Path) -> None:
    """N sign-ups cloning on the spot, then N spares made ahead, then N sign-ups taking them."""
    say(f"database {db} (dropped and recreated): pool vs clone, {n} creators each")
    db_create(db)
    try:
        seconds, _ = provision(db, tmp, 1, 2, 1)  # migrates the template
        per = stock_per(db, STOCK_CREATE.format(n=stock_sample))
        say(f"stock creation: {per * 1000:.0f} ms per creator (~{per * n:.0f}s for {n})")
        seconds, out = provision(db, tmp, 3, n + 2, jobs)
        assert spare_count(db) == 0
        say(f"{n} sign-ups cloning: {seconds:.1f}s (whole command)")
        results["pool"] = {
            "stock_per_creator_s": per,
            "clone": {"seconds": seconds, "summary": out.strip().splitlines()[-1]},
        }
        seconds, out = manage(db, "spares", "--fill", str(n), "--jobs", str(jobs))
        assert spare_count(db) == n, out
        say(f"{n} spares made ahead: {seconds:.1f}s (whole command)")
        results["pool"]["fill"] = {"seconds": seconds, "summary": out.strip().splitlines()[-1]}
        seconds, out = provision(db, tmp, n + 3, 2 * n + 2, jobs)
        left = spare_count(db)
        assert left == 0, f"{left} spares left: some sign-ups cloned instead"
        say(f"{n} sign-ups from the pool: {seconds:.1f}s (whole command)")
        results["pool"]["from_pool"] = {"seconds": seconds, "summary": out.strip().splitlines()[-1]}
    finally:
        admin_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        say(f"dropped {db}")


def save_results() -> None:
    (ROOT / ".local").mkdir(exist_ok=True)
    out_path = ROOT / ".local" / "bench-tenancy.json"
    out_path.write_text(json.dumps(results, indent=2, default=str))
    say(f"results in {out_path}")


def sub_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.tenancy")
    sub = parser.add_subparsers(dest="cmd", required=True)
    build = sub.add_parser("build", help="a database with N creators (bulk path), kept")
    build.add_argument("--db", required=True)
    build.add_argument("--creators", type=int, required=True)
    build.add_argument("--jobs", type=int, default=8)
    build.add_argument(
        "--resume",
        action="store_true",
        help="keep the database if it exists and make only the missing bench-1..N: "
        "a large build in chunks (--creators 2000, 4000, …), each under the lock on its own",
    )
    lat = sub.add_parser("latency", help="storefront p50/p99: small vs large database")
    lat.add_argument("--small", required=True)
    lat.add_argument("--large", required=True)
    lat.add_argument("--rounds", type=int, default=3)
    lat.add_argument("--seconds", type=int, default=10)
    lat.add_argument(
        "--visit-first",
        type=int,
        nargs="?",
        const=1,
        default=0,
        metavar="K",
        help="open every store K times (default 1) before the warm-up: a server "
        "that has been up for a while, each worker's connection warm",
    )
    steady = sub.add_parser("steady", help="storefront p50/p99, both servers warm, alternated")
    steady.add_argument("--small", required=True)
    steady.add_argument("--large", required=True)
    steady.add_argument("--rounds", type=int, default=10)
    steady.add_argument("--seconds", type=int, default=8)
    steady.add_argument("--visits", type=int, default=6)
    spare = sub.add_parser("pool", help="sign-ups from a pool of spare schemas vs cloning")
    spare.add_argument("--db", default="storefront_bench_pool")
    spare.add_argument("--creators", type=int, default=1000)
    spare.add_argument("--jobs", type=int, default=8)
    spare.add_argument("--stock-sample", type=int, default=20)
    drop = sub.add_parser("drop")
    drop.add_argument("--db", required=True)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-tenancy-"))
    if args.cmd == "build":
        if args.resume and db_exists(args.db):
            numbers = bench_numbers_missing(bench_slugs(args.db), args.creators)
            say(f"database {args.db} kept: {len(numbers)} of {args.creators} creators to make")
        else:
            say(f"database {args.db} (dropped and recreated), {args.creators} creators")
            db_create(args.db)
            numbers = list(range(1, args.creators + 1))
        seconds, out = provision_numbers(args.db, tmp, numbers, args.jobs)
        results["build"] = {
            "db": args.db,
            "creators": args.creators,
            "made": len(numbers),
            "seconds": seconds,
            "jobs": args.jobs,
            "summary": out.strip().splitlines()[-1],
        }
        say(f"{len(numbers)} creators in {seconds:.1f}s (whole command, --jobs {args.jobs})")
    elif args.cmd == "steady":
        latency_steady(args.small, args.large, args.rounds, args.seconds, args.visits, tmp)
    elif args.cmd == "pool":
        pool_run(args.db, args.creators, args.jobs, args.stock_sample, tmp)
    elif args.cmd == "latency":
        latency_compare(args.small, args.large, args.rounds, args.seconds, tmp, args.visit_first)
    else:
        admin_sql(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
        say(f"dropped {args.db}")
        return 0
    save_results()
    print(json.dumps(results, indent=2, default=str))
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] in ("build", "latency", "steady", "pool", "drop"):
        return sub_main(sys.argv[1:])
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default="storefront_bench")
    parser.add_argument("--creators", type=int, default=1000)
    parser.add_argument("--scale", type=int, default=10000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--stock-sample", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="do not drop the database")
    args = parser.parse_args()
    db = args.db
    if db in ("storefront", "test_storefront"):
        raise SystemExit("refusing to benchmark in a shared database")
    tmp = Path(tempfile.mkdtemp(prefix="bench-tenancy-"))
    say(f"database {db} (dropped and recreated)")
    admin_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    admin_sql(f'CREATE DATABASE "{db}"')
    try:
        manage(db, "migrate_schemas", "--shared", "--noinput")
        manage(
            db,
            "shell",
            "-c",
            "from tenants.services import public_tenant_ensure; "
            "public_tenant_ensure(domain='localhost')",
        )

        seconds, _ = provision(db, tmp, 1, 10, 1)
        say(f"10 creators in {seconds:.1f}s (first one migrates the template)")
        storefront_latency(
            db, "10_tenants", [f"bench-{i}.localhost" for i in range(1, 11)], tmp, args.seconds
        )
        throughput(db, args.seconds)

        per = stock_per(db, STOCK_CREATE.format(n=args.stock_sample))
        results["stock_create_per_creator_s"] = per
        say(
            f"stock creation: {per * 1000:.0f} ms per creator "
            f"(~{per * args.creators:.0f}s for {args.creators})"
        )

        last = 10 + args.creators
        seconds, out = provision(db, tmp, 11, last, args.jobs)
        results["provision"] = {
            "creators": args.creators,
            "seconds": seconds,
            "jobs": args.jobs,
            "summary": out.strip().splitlines()[-1],
        }
        say(f"provisioned {args.creators} creators in {seconds:.1f}s (whole command)")

        per = stock_per(db, STOCK_MIGRATE.format(n=args.stock_sample))
        results["stock_noop_migrate_per_schema_s"] = per
        say(
            f"stock no-op migrate_schemas: {per * 1000:.0f} ms per schema "
            f"(~{per * (last + 1):.0f}s for {last + 1})"
        )

        seconds, out = manage(db, "migrate_tenants", "--jobs", str(args.jobs))
        results["noop_pass"] = {"schemas": last + 1, "seconds": seconds, "output": out.strip()}
        say(f"no-op migrate_tenants over {last + 1} schemas: {seconds:.2f}s (whole command)")

        seconds, out = manage(db, "migrate_tenants", "--jobs", str(args.jobs), new_migration=True)
        results["one_migration_pass"] = {"seconds": seconds, "output": out.strip()}
        say(f"one new migration over {last + 1} schemas: {seconds:.1f}s\n{out.strip()}")
        seconds, out = manage(db, "migrate_tenants", new_migration=True)
        assert "applied benchapp.0001_initial to" in results["one_migration_pass"]["output"]
        results["noop_pass_after"] = {"seconds": seconds, "output": out.strip()}

        if args.scale > last:
            seconds, out = provision(db, tmp, last + 1, args.scale, args.jobs)
            results["scale_provision"] = {"creators": args.scale - last, "seconds": seconds}
            say(f"scaled to {args.scale} creators (+{args.scale - last} in {seconds:.0f}s)")
            storefront_latency(
                db,
                "10k_same_10_hosts",
                [f"bench-{i}.localhost" for i in range(1, 11)],
                tmp,
                args.seconds,
            )
            storefront_latency(
                db,
                "10k_all_hosts",
                [f"bench-{i}.localhost" for i in range(1, args.scale + 1)],
                tmp,
                args.seconds,
            )
    finally:
        (ROOT / ".local").mkdir(exist_ok=True)
        out_path = ROOT / ".local" / "bench-tenancy.json"
        out_path.write_text(json.dumps(results, indent=2))
        say(f"results in {out_path}")
        if not args.keep:
            admin_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            say(f"dropped {db}")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
