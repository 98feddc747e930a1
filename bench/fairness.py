"""Bench: what one store's flood costs another (issue 20, item 8; core/fairness.py).

One client floods store A's product page over N connections (a hostile client: a 503 is
retried at once, Retry-After ignored) while store B's product page is requested one at a
time. B's median is measured alone and under the flood, first with no per-store cap, then with
the shipped cap (half the gunicorn workers), on the same gunicorn worker count, in one run:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/storefront_bench_fairness \
      .venv/bin/python -m bench.fairness        # --connections 16 --flood 20 --alone 10 --workers 2

Uses its own database (dropped at the end), a private redis-server on a free port, gunicorn
with the production settings (bench/load_settings.py) on loopback, and threads as clients
(wrk is not needed; the flood runs in a process of its own, so its threads never delay B's
client). Prints B's median alone and flooded, and their ratio, per configuration.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from bench.harness import (
    BIN,
    HOST,
    PrivateRedis,
    Run,
    db_name_from_env,
    free_port,
    say,
    wait_port,
)

OTHER_HOST = "other.localhost"
PAGE = "/p/course/"
# What A floods: its product page (CPU: rendering), or a page that waits 200 ms (a worker held,
# as by a checkout waiting on a slow gateway; bench/load_urls.py).
FLOODS = {"page": PAGE, "slow": "/bench/slow/?ms=200"}

SEED_OTHER = r"""
from django_tenants.utils import tenant_context
from storefront.models import Product
from tenants.services import creator_create
creator = creator_create(slug="other", display_name="Other Store", domain="other.localhost",
                         owner_email="owner@other.example", password="bench-pass-123").creator
with tenant_context(creator):
    Product.objects.create(slug="course", name="Other course", price_amount=3900,
                           currency="USD", status=Product.Status.ACTIVE, ladder_position=1,
                           description="Other course", deliverable_url="https://files.example/o.zip")
print("ok")
"""


def _get(conn: http.client.HTTPConnection, host: str, path: str = PAGE) -> int:
    conn.request("GET", path, headers={"Host": host, "X-Forwarded-Proto": "https"})
    response = conn.getresponse()
    response.read()
    if response.getheader("Connection", "").lower() == "close":
        conn.close()
    return response.status


def measure_b(port: int, seconds: float) -> tuple[list[float], Counter]:
    """B's page one request at a time for `seconds`: latencies (ms) and statuses."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    times: list[float] = []
    statuses: Counter = Counter()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            status = _get(conn, OTHER_HOST)
        except (OSError, http.client.HTTPException):
            conn.close()
            status = 0
        times.append((time.perf_counter() - started) * 1000)
        statuses[status] += 1
        time.sleep(0.02)  # a visitor, not a second flood
    conn.close()
    return times, statuses


def _flood_process(port: int, connections: int, seconds: float, path: str, out) -> None:
    """In a process of its own, so the flood's threads never hold the GIL B's client needs."""
    statuses: Counter = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def one() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        seen: Counter = Counter()
        while time.monotonic() < deadline:
            try:
                seen[_get(conn, HOST, path)] += 1
            except (OSError, http.client.HTTPException):
                conn.close()
                seen[0] += 1
        conn.close()
        with lock:
            statuses.update(seen)

    threads = [threading.Thread(target=one) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(dict(statuses))


def flood_a(port: int, connections: int, seconds: float, path: str):
    """Start the flood of store A; returns (process, queue that gets its status counts)."""
    out = multiprocessing.Queue()
    proc = multiprocessing.Process(
        target=_flood_process, args=(port, connections, seconds, path, out), daemon=True
    )
    proc.start()
    return proc, out


def start_gunicorn(run: Run, workers: int, cap: int) -> tuple[int, object]:
    port = free_port()
    proc = run.spawn(
        [
            str(BIN / "gunicorn"),
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--timeout",
            "60",
            "--backlog",
            "2048",
            "--access-logfile",
            "/dev/null",
            "--log-level",
            "warning",
        ],
        f"gunicorn-cap{cap}.log",
        STORE_MAX_IN_FLIGHT=str(cap),
        WEB_CONCURRENCY=str(workers),
    )
    wait_port(port, "gunicorn")
    return port, proc


def one_configuration(run: Run, *, workers: int, cap: int, flood: str, args) -> dict:
    port, proc = start_gunicorn(run, workers, cap)
    try:
        measure_b(port, 2)  # warm every worker's caches
        alone, alone_statuses = measure_b(port, args.alone)
        flooder, counts = flood_a(port, args.connections, args.flood + 2, FLOODS[flood])
        time.sleep(1)  # the flood is established
        flooded, flooded_statuses = measure_b(port, args.flood)
        a_statuses = Counter(counts.get(timeout=120))
        flooder.join(30)
    finally:
        run.stop(proc)
    result = {
        "cap": cap,
        "b_alone_ms": statistics.median(alone),
        "b_flooded_ms": statistics.median(flooded),
        "b_flooded_p90_ms": statistics.quantiles(flooded, n=10)[-1],
        "b_requests": (len(alone), len(flooded)),
        "b_statuses": dict(alone_statuses + flooded_statuses),
        "a_statuses": dict(a_statuses),
    }
    result["ratio"] = result["b_flooded_ms"] / result["b_alone_ms"]
    label = f"A floods {FLOODS[flood]}, " + (f"cap {cap} per store" if cap else "no cap")
    say(
        f"{label}: B median alone {result['b_alone_ms']:.1f} ms, under A's flood "
        f"{result['b_flooded_ms']:.1f} ms (p90 {result['b_flooded_p90_ms']:.1f} ms), "
        f"ratio {result['ratio']:.2f}; B statuses {result['b_statuses']}; "
        f"A's flood statuses {result['a_statuses']} "
        f"({sum(result['a_statuses'].values()) / (args.flood + 2):.0f} req/s)"
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--flood", type=float, default=20)
    parser.add_argument("--alone", type=float, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scenario", choices=["page", "slow", "both"], default="both")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    server, db = db_name_from_env("storefront_bench_fairness")
    redis = PrivateRedis(Path(tempfile.mkdtemp(prefix="bench-redis-")))
    redis.start()
    run = Run(server=server, db=db, redis_url=redis.url)
    try:
        run.create_database()
        run.manage("shell", "-c", SEED_OTHER)
        cap = max(1, args.workers // 2)  # the shipped default (config/settings/base.py)
        say(
            f"gunicorn {args.workers} sync workers; A flooded over {args.connections} "
            f"connections for {args.flood:g}s; B measured alone {args.alone:g}s, then under it"
        )
        floods = ["page", "slow"] if args.scenario == "both" else [args.scenario]
        summary = []
        for flood in floods:
            without = one_configuration(run, workers=args.workers, cap=0, flood=flood, args=args)
            with_cap = one_configuration(run, workers=args.workers, cap=cap, flood=flood, args=args)
            summary.append(
                f"A floods {FLOODS[flood]}: {without['ratio']:.2f}× without the cap, "
                f"{with_cap['ratio']:.2f}× with {cap} in flight per store"
            )
        for line in summary:
            say(f"B's median under the flood / alone: {line}")
    finally:
        run.close(drop=not args.keep)
        redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
