"""Tenancy at speed, measured in one run against stock django-tenants (see bench/README.md).

    .venv/bin/python -m bench.tenancy [--creators 1000] [--scale 10000] [--seconds 10]

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
        DJANGO_SETTINGS_MODULE="bench.settings", BENCH_MODE=mode,
        DATABASE_URL=f"{PG}/{db}", REDIS_URL=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/9"),
        PYTHONPATH=str(ROOT),
    )
    env.pop("BENCH_NEW_MIGRATION", None)
    if new_migration:
        env["BENCH_NEW_MIGRATION"] = "1"
    return env


def manage(db: str, *args: str, mode: str = "routed", new_migration: bool = False,
           check: bool = True) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(
        [PY, "manage.py", *args], cwd=ROOT, env=env_for(db, mode, new_migration),
        capture_output=True, text=True,
    )
    elapsed = time.perf_counter() - started
    if check and proc.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed, proc.stdout + proc.stderr


def admin_sql(sql: str) -> None:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def write_csv(path: Path, first: int, last: int) -> None:
    with path.open("w") as f:
        f.write("slug,display_name,domain,owner_email\n")
        for i in range(first, last + 1):
            f.write(f"bench-{i},Bench {i},bench-{i}.localhost,owner{i}@example.com\n")


def provision(db: str, tmp: Path, first: int, last: int, jobs: int) -> tuple[float, str]:
    path = tmp / f"creators-{first}-{last}.csv"
    write_csv(path, first, last)
    # Without the bench migration: the "one new migration" pass must find it missing.
    return manage(db, "create_creators", str(path), "--jobs", str(jobs))


# --- HTTP ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    def __init__(self, db: str, mode: str, workers: int = 2):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [str(Path(PY).parent / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(workers), "--access-logfile", "/dev/null", "--log-level", "warning"],
            cwd=ROOT, env=env_for(db, mode),
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


def wrk(port: int, path: str, *, host: str | None = None, hosts_file: Path | None = None,
        seconds: int, connections: int = 8, threads: int = 2) -> dict:
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
                r = wrk(server.port, "/bench/one-query/", host="bench-1.localhost",
                        seconds=seconds)
            finally:
                server.stop()
            runs[mode].append(r["rps"])
            say(f"throughput {mode}: {r['rps']:.0f} req/s")
    best = {mode: max(values) for mode, values in runs.items()}
    results["throughput"] = {
        "runs": runs, "best": best,
        "routed_vs_plain": best["routed"] / best["plain"],
        "stock_vs_plain": best["stock"] / best["plain"],
    }
    say(f"routed/plain = {best['routed'] / best['plain']:.1%}, "
        f"stock/plain = {best['stock'] / best['plain']:.1%}")


def storefront_latency(db: str, label: str, hosts: list[str], tmp: Path, seconds: int) -> None:
    hosts_file = tmp / f"hosts-{label}.txt"
    hosts_file.write_text("\n".join(hosts) + "\n")
    server = Gunicorn(db, "routed")
    try:
        # Warm-up as long as the run: every host resolved once per worker, relcache filled.
        wrk(server.port, "/", hosts_file=hosts_file, seconds=seconds, connections=4)
        r = wrk(server.port, "/", hosts_file=hosts_file, seconds=seconds, connections=4)
    finally:
        server.stop()
    results[f"storefront_{label}"] = r
    say(f"storefront {label}: p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
        f"{r['rps']:.0f} req/s")


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
def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default="storefront_bench")
    parser.add_argument("--creators", type=int, default=1000)
    parser.add_argument("--scale", type=int, default=10000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
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
        manage(db, "shell", "-c", "from tenants.services import public_tenant_ensure; "
               "public_tenant_ensure(domain='localhost')")

        seconds, _ = provision(db, tmp, 1, 10, 1)
        say(f"10 creators in {seconds:.1f}s (first one migrates the template)")
        storefront_latency(db, "10_tenants", [f"bench-{i}.localhost" for i in range(1, 11)],
                           tmp, args.seconds)
        throughput(db, args.seconds)

        per = stock_per(db, STOCK_CREATE.format(n=args.stock_sample))
        results["stock_create_per_creator_s"] = per
        say(f"stock creation: {per * 1000:.0f} ms per creator "
            f"(~{per * args.creators:.0f}s for {args.creators})")

        last = 10 + args.creators
        seconds, out = provision(db, tmp, 11, last, args.jobs)
        results["provision"] = {"creators": args.creators, "seconds": seconds,
                                "jobs": args.jobs, "summary": out.strip().splitlines()[-1]}
        say(f"provisioned {args.creators} creators in {seconds:.1f}s (whole command)")

        per = stock_per(db, STOCK_MIGRATE.format(n=args.stock_sample))
        results["stock_noop_migrate_per_schema_s"] = per
        say(f"stock no-op migrate_schemas: {per * 1000:.0f} ms per schema "
            f"(~{per * (last + 1):.0f}s for {last + 1})")

        seconds, out = manage(db, "migrate_tenants", "--jobs", str(args.jobs))
        results["noop_pass"] = {"schemas": last + 1, "seconds": seconds, "output": out.strip()}
        say(f"no-op migrate_tenants over {last + 1} schemas: {seconds:.2f}s (whole command)")

        seconds, out = manage(db, "migrate_tenants", "--jobs", str(args.jobs),
                              new_migration=True)
        results["one_migration_pass"] = {"seconds": seconds, "output": out.strip()}
        say(f"one new migration over {last + 1} schemas: {seconds:.1f}s\n{out.strip()}")
        seconds, out = manage(db, "migrate_tenants", new_migration=True)
        assert "applied benchapp.0001_initial to" in results["one_migration_pass"]["output"]
        results["noop_pass_after"] = {"seconds": seconds, "output": out.strip()}

        if args.scale > last:
            seconds, out = provision(db, tmp, last + 1, args.scale, args.jobs)
            results["scale_provision"] = {"creators": args.scale - last, "seconds": seconds}
            say(f"scaled to {args.scale} creators (+{args.scale - last} in {seconds:.0f}s)")
            storefront_latency(db, "10k_same_10_hosts",
                               [f"bench-{i}.localhost" for i in range(1, 11)], tmp, args.seconds)
            storefront_latency(db, "10k_all_hosts",
                               [f"bench-{i}.localhost" for i in range(1, args.scale + 1)], tmp,
                               args.seconds)
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
