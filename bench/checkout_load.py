"""Checkout under load: gunicorn with the production settings, the real PostgreSQL, and the
gateway answered by a local stub at a fixed latency, so only our own cost is measured.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/storefront_bench_load \
      .venv/bin/python -m bench.checkout_load [--workers 2] [--gunicorn-threads 32] \
        [--threads 16] [--seconds 30] [--wait-buyers 50] [--wait-gateway-ms 2000]

gunicorn runs as the Procfile does (gthread, `--gunicorn-threads` per worker; 0 = the old
sync workers). Phases, one after the other on the same server: the baseline (a view that
does nothing, behind the same middleware and tenant routing), the product page and the
checkout page with wrk, the baseline again with this script's own generator, then buyers
walking product page → checkout page → start (with the bump) → pay → offer page (where pay's
answer sends them) →
one-click accept (the CPU time gunicorn's processes used is divided by the paid checkouts, and
so is each other part's: PostgreSQL's backends, the stub, this generator, the whole machine:
bench/cpu_split.py),
and last the gateway slowed to `--wait-gateway-ms` while `--wait-buyers` buyers wait on it and
a few browsers read the product page. With `--skeleton`, skeleton buyers follow the real ones
(bench/skeleton.py: the same round trips, no logic). Prints requests/s and p50/p99 per
endpoint, the ratios to the baseline and the load average; the database is dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import threading
import time

from bench.cpu_split import CpuSplit
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
from bench.skeleton import skeleton_buyer

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


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _browse(port: int, path: str, start, stop, results, count: int = 4) -> None:
    """`count` browsers reading the product page every 20 ms from `start` to `stop`; their
    samples go to `results` (a Pipe's end) when they stop."""
    rec = Recorder()

    def one(k: int) -> None:
        client = Client(port, rec, address(300000 + k))
        while not stop.is_set():
            client.request("product_page", "GET", path)
            time.sleep(0.02)
        client.close()

    start.wait()
    browsers = [threading.Thread(target=one, args=(k,), daemon=True) for k in range(count)]
    for t in browsers:
        t.start()
    for t in browsers:
        t.join(60)
    results.send(dict(rec.samples))


def _waiting_phase(run: Run, port: int, catalog: dict, args) -> dict:
    """`--wait-buyers` buyers stuck on a slow gateway while browsers read the product page.

    With `--browsers process` (the default) the browsers run in a process of their own,
    forked before the buyers' threads start: in the buyers' process their timings also held
    the wait for that process's GIL when 50 buyers' answers arrive together (the server's
    latency plus the generator's), `--browsers threads` measures it that way."""
    run.stub("POST", f"/delay?ms={args.wait_gateway_ms:g}")
    buyers_rec, pages = Recorder(), Recorder()
    path = f"/p/{catalog['core']}/"
    apart = args.browsers == "process"
    context = multiprocessing.get_context("fork")
    stop = context.Event() if apart else threading.Event()
    start = context.Event() if apart else threading.Event()
    receive, send = context.Pipe(duplex=False)
    target = dict(target=_browse, args=(port, path, start, stop, send), daemon=True)
    browsers = context.Process(**target) if apart else threading.Thread(**target)
    browsers.start()  # forked while this process has no other thread running

    def buyer(i: int) -> None:
        client = Client(port, buyers_rec, address(200000 + i))
        try:
            buyer_flow(client, catalog, 200000 + i)
        finally:
            client.close()

    waiting = threading.Thread(
        target=drive,
        args=(buyer,),
        kwargs={"threads": args.wait_buyers, "seconds": args.wait_seconds, "max_iterations": 10**6},
        daemon=True,
    )
    waiting.start()
    time.sleep(min(3.0, args.wait_seconds / 4))  # the buyers reach the gateway first
    started = time.perf_counter()
    start.set()
    load = _load()
    time.sleep(max(1.0, args.wait_seconds - 3.0))
    stop.set()
    for name, rows in receive.recv().items():
        pages.samples[name].extend(rows)
    elapsed = time.perf_counter() - started
    browsers.join(30)
    waiting.join(args.wait_seconds + 120)
    run.stub("POST", f"/delay?ms={args.gateway_ms:g}")
    out = pages.summary(elapsed).get("product_page", {})
    out["buyers_waiting"] = args.wait_buyers
    out["browsers"] = args.browsers
    out["gateway_ms"] = args.wait_gateway_ms
    out["buyer_requests"] = sum(len(v) for v in buyers_rec.samples.values())
    out["buyer_errors"] = buyers_rec.errors[:5]
    out["load"] = load
    return out


def _skeleton_phase(run: Run, port: int, catalog: dict, args) -> dict:
    """Skeleton buyers at the same concurrency and for as long as the real ones."""
    rec, done = Recorder(), [0]

    def buyer(i: int) -> None:
        client = Client(port, rec, address(90000 + i))
        try:
            skeleton_buyer(client, catalog)
            done[0] += 1
        finally:
            client.close()

    say(f"skeleton buyers: {args.threads} at a time for {args.seconds}s")
    before = CpuSplit.of_run(run)
    elapsed, _ = drive(
        buyer, threads=args.threads, seconds=args.seconds, max_iterations=args.max_buyers
    )
    spent = CpuSplit.of_run(run) - before
    out = {
        "buyers": done[0],
        "per_s": done[0] / elapsed,
        "cpu_split_ms_per_buyer": spent.per(done[0]),
        "errors": rec.errors[:5],
        "load": _load(),
    }
    print(
        f"skeleton buyers (the same round trips, no logic): {done[0]} in {elapsed:.1f}s = "
        f"{out['per_s']:.1f}/s; errors {len(rec.errors)} (load {out['load']})"
    )
    print(spent.line(done[0], elapsed).replace("per paid checkout", "per skeleton buyer"))
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--gunicorn-threads", type=int, default=32, help="0: sync workers")
    parser.add_argument("--threads", type=int, default=16, help="buyers (generator threads)")
    parser.add_argument("--wait-buyers", type=int, default=50)
    parser.add_argument("--wait-gateway-ms", type=float, default=2000)
    parser.add_argument("--wait-seconds", type=float, default=15)
    parser.add_argument(
        "--browsers",
        choices=("process", "threads"),
        default="process",
        help="the waiting phase's product-page readers: a process of their own, or threads "
        "of the buyers' process (the first runs of this bench)",
    )
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--max-buyers", type=int, default=5000)
    parser.add_argument("--gateway-ms", type=float, default=20)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--skeleton",
        action="store_true",
        help="after the buyers, as many skeleton buyers (bench/skeleton.py: the same round "
        "trips, no logic) for as long",
    )
    parser.add_argument("--no-wrk", action="store_true")
    args = parser.parse_args()
    server, db = db_name_from_env("storefront_bench_load")
    run = Run(
        server=server, db=db, redis_url=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/10")
    )
    results: dict = {
        "workers": args.workers,
        "gunicorn_threads": args.gunicorn_threads,
        "threads": args.threads,
        "gateway_ms": args.gateway_ms,
        "cpus": os.cpu_count(),
    }
    try:
        catalog = run.create_database()
        run.start_stub(args.gateway_ms)
        port = run.start_gunicorn(args.workers, threads=args.gunicorn_threads)
        model = f"gthread × {args.gunicorn_threads}" if args.gunicorn_threads else "sync"
        say(
            f"gunicorn ({args.workers} workers, {model}, production settings) on "
            f"127.0.0.1:{port}; gateway stub at {args.gateway_ms:g} ms"
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
                ("checkout_page", f"/checkout/{catalog['core']}/"),
                ("baseline_again", "/bench/minimal/"),
            ):
                results[f"wrk_{name}"] = r = wrk(port, path, 8)
                r["load"] = _load()
                say(
                    f"wrk {name}: {r['rps']:.0f} req/s, p50 {r['p50_ms']:.1f} ms, "
                    f"p99 {r['p99_ms']:.1f} ms, non-2xx {r['non_2xx']} (load {r['load']})"
                )

        # The minimal view, the product page and the checkout page with this generator, same
        # concurrency, one after the other and the minimal view again at the end (the machine
        # is shared: its load drifts).
        local = threading.local()
        pages = {}
        for name, path in (
            ("baseline", "/bench/minimal/"),
            ("product_page", f"/p/{catalog['core']}/"),
            ("checkout_page", f"/checkout/{catalog['core']}/"),
            ("baseline_again", "/bench/minimal/"),
        ):
            page_rec = Recorder()

            def get(i: int, name=name, path=path, page_rec=page_rec) -> None:
                if getattr(local, "rec", None) is not page_rec:
                    local.rec, local.client = page_rec, Client(port, page_rec, address(i))
                local.client.request(name, "GET", path)

            elapsed, _ = drive(get, threads=args.threads, seconds=8, max_iterations=200000)
            pages[name] = r = page_rec.summary(elapsed)[name]
            r["load"] = _load()
            say(
                f"{name} (this generator, {args.threads} threads): {r['rps']:.0f} req/s, "
                f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, statuses {r['statuses']} "
                f"(load {r['load']})"
            )
        results["pages"] = pages
        results["baseline"] = b = pages["baseline"]
        minimal_rps = (pages["baseline"]["rps"] + pages["baseline_again"]["rps"]) / 2
        for name in ("product_page", "checkout_page"):
            pages[name]["of_minimal"] = pages[name]["rps"] / minimal_rps
            say(f"{name}: {pages[name]['of_minimal']:.1%} of the minimal view (mean of both runs)")

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
        before = CpuSplit.of_run(run)
        elapsed, _ = drive(
            buyer, threads=args.threads, seconds=args.seconds, max_iterations=args.max_buyers
        )
        spent = CpuSplit.of_run(run) - before
        cpu = spent.parts["gunicorn"]
        results["flow_load"] = _load()
        results["flow"] = rec.summary(elapsed)
        results["flow_outcomes"] = {
            **outcomes,
            "seconds": elapsed,
            "checkouts_per_s": outcomes["paid"] / elapsed,
            "paid_with_upsell_per_s": outcomes["accepted"] / elapsed,
            "gunicorn_cpu_s": cpu,
            "cpu_ms_per_paid_checkout": 1000 * cpu / max(1, outcomes["paid"]),
            "cpu_split_ms_per_paid_checkout": spent.per(outcomes["paid"]),
            "cpu_split_line": spent.line(outcomes["paid"], elapsed),
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
        print(
            f"paid checkouts with the upsell: {o['paid_with_upsell_per_s']:.1f}/s; gunicorn CPU "
            f"{o['cpu_ms_per_paid_checkout']:.1f} ms per paid checkout "
            f"(load {results['flow_load']})"
        )
        print(o["cpu_split_line"])
        if args.skeleton:
            results["skeleton"] = _skeleton_phase(run, port, catalog, args)
        if "wrk_baseline" in results:
            c = results["wrk_checkout_page"]
            print(
                f"wrk: checkout page {c['rps']:.0f} req/s = {c['rps'] / w['rps']:.1%} of the "
                f"minimal view; the minimal view again at the end: "
                f"{results['wrk_baseline_again']['rps']:.0f} req/s"
            )
        print(f"gateway stub: {results['gateway']}")
        if args.wait_buyers:
            say(
                f"slow gateway: {args.wait_gateway_ms:g} ms, {args.wait_buyers} buyers waiting, "
                "4 browsers on the product page"
            )
            results["waiting"] = x = _waiting_phase(run, port, catalog, args)
            print(
                f"product page while {x['buyers_waiting']} buyers wait on a {x['gateway_ms']:g} ms "
                f"gateway: {x.get('requests', 0)} requests, p50 {x.get('p50_ms', 0):.1f} ms, "
                f"p99 {x.get('p99_ms', 0):.1f} ms, max {x.get('max_ms', 0):.1f} ms, statuses "
                f"{x.get('statuses')} (browsers in {x['browsers']}; load {x['load']}; "
                f"buyer errors {x['buyer_errors']})"
            )
    finally:
        out = ROOT / ".local" / "bench-checkout-load.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(results, indent=2, default=str))
        say(f"results in {out}")
        run.close(drop=not args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
