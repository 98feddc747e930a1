"""Drill: the gateway slows to 10 s, then refuses connections, in the middle of a checkout
load. Pages that do not need the gateway must never answer 500; afterwards reconciliation
settles every pending attempt, with zero double charges.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/storefront_bench_drill \
      .venv/bin/python -m bench.drills.gateway_faults [--slow 15] [--down 15] \
        [--workers 4] [--gunicorn-threads 0]     # e.g. --workers 2 --gunicorn-threads 32 (Procfile)

gunicorn (production settings) + a Celery worker + the gateway stub, all on loopback; the
machine's Redis (db 10 by default, BENCH_REDIS) is used, never stopped.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

from bench.drills.common import audit, report, settle
from bench.harness import Client, Recorder, Run, address, buyer_flow, db_name_from_env, drive, say

NEEDS_GATEWAY = {"checkout_start", "checkout_pay", "upsell_accept"}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slow", type=float, default=15, help="seconds at 10 s latency")
    parser.add_argument("--down", type=float, default=15, help="seconds refusing connections")
    parser.add_argument("--calm", type=float, default=10, help="seconds before, between, after")
    parser.add_argument("--buyers", type=int, default=6)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--gunicorn-threads", type=int, default=0, help="0: sync workers")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    server, db = db_name_from_env("storefront_bench_drill")
    run = Run(
        server=server, db=db, redis_url=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/10")
    )
    try:
        catalog = run.create_database()
        run.start_stub(20)
        port = run.start_gunicorn(args.workers, threads=args.gunicorn_threads)
        run.start_worker(name="gateway-drill")
        run.django_setup()
        rec = Recorder()
        first = buyer_flow(Client(port, rec, address(1)), catalog, 1)
        assert first.paid == "paid", rec.errors

        total = args.calm * 3 + args.slow + args.down
        outcomes = {"buyers": 0, "paid": 0, "processing": 0, "accepted": 0}
        lock = threading.Lock()

        def buyer(i: int) -> None:
            client = Client(port, rec, address(100 + i))
            try:
                result = buyer_flow(client, catalog, 100 + i)
            finally:
                client.close()
            with lock:
                outcomes["buyers"] += 1
                outcomes["paid"] += result.paid == "paid"
                outcomes["processing"] += result.paid == "processing"
                outcomes["accepted"] += result.accepted

        def browser(i: int) -> None:  # pages that need no gateway
            client = Client(port, rec, address(50000 + i))
            for name, path in (
                ("store_index", "/"),
                ("product_page", f"/p/{catalog['core']}/"),
                ("checkout_page", f"/checkout/{catalog['core']}/"),
                ("order_thanks", f"/o/{first.order}/thanks"),
            ):
                client.request(name, "GET", path)
            client.close()
            time.sleep(0.2)

        threads = [
            threading.Thread(
                target=drive,
                args=(buyer,),
                daemon=True,
                kwargs={"threads": args.buyers, "seconds": total, "max_iterations": 20000},
            ),
            threading.Thread(
                target=drive,
                args=(browser,),
                daemon=True,
                kwargs={"threads": 2, "seconds": total, "max_iterations": 20000},
            ),
        ]
        for t in threads:
            t.start()
        time.sleep(args.calm)
        say(f"injecting: every gateway answer takes 10 s, for {args.slow:g}s")
        run.stub("POST", "/delay?ms=10000")
        time.sleep(args.slow)
        run.stub("POST", "/delay?ms=20")
        time.sleep(args.calm)
        say(f"injecting: the gateway refuses connections, for {args.down:g}s")
        run.stub("POST", "/refuse")
        time.sleep(args.down)
        run.stub("POST", "/accept")
        say("gateway back; load continues")
        for t in threads:
            t.join(total + 180)
        summary = rec.summary(total)
        no_gateway_5xx = {
            name: sum(n for s, n in r["statuses"].items() if s >= 500)
            for name, r in summary.items()
            if name not in NEEDS_GATEWAY
        }
        gateway_5xx = {
            name: sum(n for s, n in r["statuses"].items() if s >= 500)
            for name, r in summary.items()
            if name in NEEDS_GATEWAY
        }
        for name, r in summary.items():
            say(
                f"{name}: {r['requests']} requests, statuses {r['statuses']}, "
                f"p50 {r['p50_ms']:.0f} ms, max {r['max_ms']:.0f} ms"
            )
        settle(run)
        counts = audit(run)
        counts["inconsistent"] += sum(no_gateway_5xx.values())
        report(
            "gateway slow (10 s) then refusing connections, under checkout load",
            f"10 s latency on every gateway call for {args.slow:g}s, then connections refused "
            f"for {args.down:g}s, during {total:g}s of load ({args.buyers} buyers + 2 browsers)",
            {
                "buyer flows": outcomes["buyers"],
                "paid at once": outcomes["paid"],
                "answered processing": outcomes["processing"],
                "upsells accepted": outcomes["accepted"],
                "requests": sum(r["requests"] for r in summary.values()),
                "500s on pages without the gateway": sum(no_gateway_5xx.values()),
                "500s on gateway routes": sum(gateway_5xx.values()),
            },
            counts,
        )
    finally:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001
            pass
        run.close(drop=not args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
