"""In-process CPU per hosted page: the minimal view, the product page and the checkout page
through the whole middleware stack (Django's test client, production settings as
bench/checkout_load.py serves them), on a database of its own, no network in between.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/storefront_bench_cpu \
      .venv/bin/python -m bench.page_cpu [--requests 400] [--profile checkout_page]

Each page is requested by a returning visitor (its cookies kept, as the load generator's
threads do) and by a first visit (no cookie, as wrk sends), with the page cache off (drawn per
request, as before issue 19) and on (drawn per change), in the same process. Prints the CPU
milliseconds per request (best of three rounds of `--requests`) and each page's cost as a
ratio of the minimal view's; `--profile NAME` prints cProfile's top functions for that page
(page cache on).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import time

from bench.harness import HOST, ROOT, in_process_run, say

PAGES = ("minimal", "product_page", "checkout_page")


def _paths(catalog: dict) -> dict[str, str]:
    return {
        "minimal": "/bench/minimal/",
        "product_page": f"/p/{catalog['core']}/",
        "checkout_page": f"/checkout/{catalog['core']}/",
    }


def _client(*, returning: bool):
    from django.test import Client

    client = Client(
        HTTP_HOST=HOST,
        HTTP_X_FORWARDED_PROTO="https",
        HTTP_X_FORWARDED_FOR="203.0.113.7",
        HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
    )
    client.returning = returning
    return client


def _get(client, path: str) -> None:
    if not client.returning:
        client.cookies.clear()
    response = client.get(path)
    if response.status_code != 200:
        raise RuntimeError(f"{path}: {response.status_code} {response.content[:300]!r}")


def cpu_ms_per_request(client, path: str, n: int) -> float:
    """Best of three rounds: the page's own cost, whatever else the machine runs."""
    rounds = []
    for _ in range(3):
        start = time.thread_time()
        for _ in range(n):
            _get(client, path)
        rounds.append((time.thread_time() - start) * 1000 / n)
    return min(rounds)


def _page_cache(on: bool) -> None:
    from storefront.page_cache import page_cache

    page_cache.enabled = on
    page_cache.invalidate()
    if on and not page_cache.wait_listening(10):
        raise RuntimeError("the page cache's listener did not connect")


def measure(catalog: dict, n: int) -> dict:
    """Each page drawn per request (the page cache off) and per change (on), same process."""
    paths = _paths(catalog)
    out: dict[str, dict] = {}
    for mode, visit in (
        ("drawn_per_request", "returning"),
        ("drawn_per_change", "returning"),
        ("drawn_per_request", "first_visit"),
        ("drawn_per_change", "first_visit"),
    ):
        _page_cache(mode == "drawn_per_change")
        client = _client(returning=visit == "returning")
        for path in paths.values():  # warm: templates, connections, caches
            for _ in range(5):
                _get(client, path)
        figures = {name: cpu_ms_per_request(client, path, n) for name, path in paths.items()}
        figures["minimal_again"] = cpu_ms_per_request(client, paths["minimal"], n)
        minimal = (figures["minimal"] + figures["minimal_again"]) / 2
        out[f"{visit}, {mode}"] = {
            **{f"{k}_cpu_ms": round(v, 3) for k, v in figures.items()},
            # Throughput on a CPU-bound server is the inverse of CPU per request.
            **{f"{k}_of_minimal": round(minimal / figures[k], 3) for k in PAGES[1:]},
        }
    return out


def profile(catalog: dict, name: str, n: int, *, returning: bool = True) -> None:
    path = _paths(catalog)[name]
    client = _client(returning=returning)
    _page_cache(True)
    for _ in range(5):
        _get(client, path)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        _get(client, path)
    prof.disable()
    stats = pstats.Stats(prof)
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(25)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--profile", choices=PAGES, default="")
    parser.add_argument("--first-visit", action="store_true", help="profile without cookies")
    args, run = in_process_run(parser, "storefront_bench_cpu")
    try:
        catalog = run.database_kept("bench-page-cpu", reuse=args.reuse)
        run.django_setup()
        if args.profile:
            profile(catalog, args.profile, args.requests, returning=not args.first_visit)
            return 0
        results = measure(catalog, args.requests)
        for visit, figures in results.items():
            say(f"{visit}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
        out = ROOT / ".local" / "bench-page-cpu.json"
        out.write_text(json.dumps(results, indent=2))
        say(f"results in {out}")
    finally:
        run.close(drop=not (args.keep or args.reuse))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
