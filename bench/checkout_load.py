"""Checkout under load: gunicorn with the production settings, the real PostgreSQL, and the
gateway answered by a local stub at a fixed latency, so only our own cost is measured.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/storefront_bench_load \
      .venv/bin/python -m bench.checkout_load [--workers 4] [--threads 8] [--seconds 30]

Phases, one after the other on the same server: the baseline (a view that does nothing,
behind the same middleware and tenant routing) and the product page with wrk, the baseline
again with this script's own generator, then buyers walking product page → checkout page →
start (with the bump) → pay → next → offer page → one-click accept. Prints requests/s and
p50/p99 per endpoint and the ratio to the baseline; the database is dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys

from bench.harness import (
    HOST,
    ROOT,
    Client,
    Recorder,
    Run,
    address,
    buyer_flow,
    db_name_from_env,
    drive,
    say,
)

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(port: int, path: str, seconds: int) -> dict:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            "-c8",
            f"-d{seconds}s",
            "--latency",
            "-H",
            f"Host: {HOST}",
            "-H",
            "X-Forwarded-Proto: https",
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lat = {
        f"p{p}_ms": float(v) * _UNITS[u]
        for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    }
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        **lat,
        "non_2xx": int(bad.group(1)) if bad else 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--max-buyers", type=int, default=5000)
    parser.add_argument("--gateway-ms", type=float, default=20)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--no-wrk", action="store_true")
    args = parser.parse_args()
    server, db = db_name_from_env("storefront_bench_load")
    run = Run(
        server=server, db=db, redis_url=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/10")
    )
    results: dict = {
        "workers": args.workers,
        "threads": args.threads,
        "gateway_ms": args.gateway_ms,
        "cpus": os.cpu_count(),
    }
    try:
        catalog = run.create_database()
        run.start_stub(args.gateway_ms)
        port = run.start_gunicorn(args.workers)
        say(
            f"gunicorn ({args.workers} workers, production settings) on 127.0.0.1:{port}; "
            f"gateway stub at {args.gateway_ms:g} ms"
        )

        warm = Recorder()
        drive(
            lambda i: buyer_flow(Client(port, warm, address(60000 + i)), catalog, 60000 + i),
            threads=4,
            seconds=30,
            max_iterations=20,
        )
        if warm.errors:
            raise RuntimeError("warm-up failed: " + "\n".join(warm.errors[:5]))

        if shutil.which("wrk") and not args.no_wrk:
            for name, path in (
                ("baseline", "/bench/minimal/"),
                ("product_page", f"/p/{catalog['core']}/"),
            ):
                results[f"wrk_{name}"] = r = wrk(port, path, 8)
                say(
                    f"wrk {name}: {r['rps']:.0f} req/s, p50 {r['p50_ms']:.1f} ms, "
                    f"p99 {r['p99_ms']:.1f} ms, non-2xx {r['non_2xx']}"
                )

        base = Recorder()

        def minimal(i: int) -> None:
            client = clients.setdefault(i % args.threads, Client(port, base, address(i)))
            client.request("baseline", "GET", "/bench/minimal/")

        clients: dict[int, Client] = {}
        elapsed, _ = drive(minimal, threads=args.threads, seconds=8, max_iterations=200000)
        results["baseline"] = base.summary(elapsed)["baseline"]
        b = results["baseline"]
        say(
            f"baseline (this generator): {b['rps']:.0f} req/s, p50 {b['p50_ms']:.1f} ms, "
            f"p99 {b['p99_ms']:.1f} ms"
        )

        rec = Recorder()
        outcomes = {"paid": 0, "accepted": 0, "buyers": 0}

        def buyer(i: int) -> None:
            client = Client(port, rec, address(i))
            try:
                result = buyer_flow(client, catalog, i)
            finally:
                client.close()
            outcomes["buyers"] += 1
            outcomes["paid"] += result.paid == "paid"
            outcomes["accepted"] += result.accepted

        say(f"buyers: {args.threads} at a time for {args.seconds}s (at most {args.max_buyers})")
        elapsed, _ = drive(
            buyer, threads=args.threads, seconds=args.seconds, max_iterations=args.max_buyers
        )
        results["flow"] = rec.summary(elapsed)
        results["flow_outcomes"] = {
            **outcomes,
            "seconds": elapsed,
            "checkouts_per_s": outcomes["paid"] / elapsed,
            "errors": rec.errors[:10],
        }
        results["gateway"] = run.stub("GET", "/stats")
        results["gateway"]["requests_per_checkout"] = results["gateway"]["requests"] / max(
            1, outcomes["buyers"] + 20
        )

        print("\n| endpoint | requests | req/s | p50 ms | p99 ms | non-2xx/3xx |")
        print("|---|---|---|---|---|---|")
        rows = {"baseline (minimal view)": b, **results["flow"]}
        for name, r in rows.items():
            bad = sum(n for s, n in r["statuses"].items() if s >= 400)
            print(
                f"| {name} | {r['requests']} | {r['rps']:.1f} | {r['p50_ms']:.1f} | "
                f"{r['p99_ms']:.1f} | {bad} |"
            )
        o = results["flow_outcomes"]
        print(
            f"\nbuyers {o['buyers']}, paid {o['paid']}, upsells accepted {o['accepted']} in "
            f"{o['seconds']:.1f}s: {o['checkouts_per_s']:.1f} paid checkouts/s "
            f"({o['checkouts_per_s'] * 60:.0f}/min)"
        )
        mix = sum(r["requests"] for r in results["flow"].values()) / o["seconds"]
        print(
            f"all flow requests together: {mix:.1f} req/s = {mix / b['rps']:.1%} of the "
            f"baseline's {b['rps']:.0f} req/s (same generator, same concurrency)"
        )
        if "wrk_baseline" in results:
            w, p = results["wrk_baseline"], results["wrk_product_page"]
            print(
                f"wrk: product page {p['rps']:.0f} req/s = {p['rps'] / w['rps']:.1%} of the "
                f"minimal view's {w['rps']:.0f} req/s"
            )
        print(f"gateway stub: {results['gateway']}")
    finally:
        out = ROOT / ".local" / "bench-checkout-load.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(results, indent=2, default=str))
        say(f"results in {out}")
        run.close(drop=not args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
