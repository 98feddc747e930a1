"""In-process CPU per paid checkout with its upsell: the same buyer as bench/checkout_load.py
(product page → checkout page → start with the bump → pay → offer page → one-click accept,
6 requests, 5 gateway calls) through Django's test client and the whole middleware
stack with the production settings, the gateway answered by the bench's stub over loopback.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/storefront_bench_cpu \
      .venv/bin/python -m bench.checkout_cpu [--buyers 100] [--profile] [--keep | --reuse]

The figure is this thread's CPU time (`time.thread_time`) per buyer, best of three rounds:
what one checkout costs our Python, whatever else the machine runs (waiting on PostgreSQL and
the stub is not counted, unlike gunicorn's process CPU, which also counts its sockets'
system time). `--profile` prints cProfile's top functions measured in the same CPU time.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import time

from bench.harness import HOST, ROOT, Recorder, address, buyer_flow, in_process_run, say


class TestClientBuyer:
    """The harness's `Client` interface over Django's test client (CSRF enforced, as served).

    One test client for every buyer, its cookies cleared per buyer: a new one would load the
    middleware again (WhiteNoise scans the static files), which gunicorn does once per process.
    """

    def __init__(self, client, recorder: Recorder, addr: str):
        self.recorder, self.client = recorder, client
        client.cookies.clear()
        client.defaults["HTTP_X_FORWARDED_FOR"] = addr

    def request(self, name: str, method: str, path: str, form: dict | None = None):
        started, cpu = time.perf_counter(), time.thread_time()
        if method == "GET":
            response = self.client.get(path)
        else:
            token = self.client.cookies.get("csrftoken")
            response = self.client.post(
                path,
                dict(form or {}, csrfmiddlewaretoken=token.value if token else ""),
                HTTP_ORIGIN=f"https://{HOST}",
                HTTP_REFERER=f"https://{HOST}/",
            )
        self.recorder.add(name, time.perf_counter() - started, response.status_code)
        _CPU_BY_REQUEST[name] = _CPU_BY_REQUEST.get(name, 0.0) + time.thread_time() - cpu
        if response.status_code >= 500:
            self.recorder.error(f"{name} {response.status_code}: {response.content[:200]!r}")
        body = b"" if getattr(response, "streaming", False) else response.content
        return response.status_code, dict(response.headers), body

    def close(self) -> None:
        pass


_client = None
_CPU_BY_REQUEST: dict[str, float] = {}  # this thread's CPU seconds per request name


def _buyers(catalog: dict, first: int, n: int, recorder: Recorder) -> int:
    global _client
    from django.test import Client

    if _client is None:
        _client = Client(
            enforce_csrf_checks=True,
            HTTP_HOST=HOST,
            HTTP_X_FORWARDED_PROTO="https",
            HTTP_USER_AGENT="bench",
        )
    accepted = 0
    for i in range(first, first + n):
        buyer = TestClientBuyer(_client, recorder, address(i))
        accepted += buyer_flow(buyer, catalog, i).accepted
    return accepted


def cpu_ms_per_checkout(catalog: dict, n: int) -> tuple[float, list[float]]:
    """Best of three rounds of `n` buyers, each paying and accepting the upsell."""
    rounds, first = [], 1000
    _CPU_BY_REQUEST.clear()
    for _ in range(3):
        recorder = Recorder()
        start = time.thread_time()
        accepted = _buyers(catalog, first, n, recorder)
        rounds.append((time.thread_time() - start) * 1000 / n)
        first += n
        if accepted != n or recorder.errors:
            raise RuntimeError(f"{n - accepted} buyers did not finish: {recorder.errors[:3]}")
    return min(rounds), rounds


def profile(catalog: dict, n: int, out: str) -> None:
    prof = cProfile.Profile(time.thread_time)
    prof.enable()
    _buyers(catalog, 500000, n, Recorder())
    prof.disable()
    prof.dump_stats(out)
    stats = pstats.Stats(prof)
    stats.sort_stats("cumulative").print_stats(80)
    stats.sort_stats("tottime").print_stats(40)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--buyers", type=int, default=100)
    parser.add_argument("--gateway-ms", type=float, default=20)
    parser.add_argument("--profile", action="store_true")
    args, run = in_process_run(parser, "storefront_bench_cpu")
    try:
        catalog = run.database_kept("bench-checkout-cpu", reuse=args.reuse)
        run.start_stub(args.gateway_ms)
        run.django_setup()
        _buyers(catalog, 100, 10, Recorder())  # warm: templates, connections, caches
        if args.profile:
            profile(catalog, args.buyers, str(ROOT / ".local" / "bench-checkout-cpu.prof"))
            return 0
        best, rounds = cpu_ms_per_checkout(catalog, args.buyers)
        by_request = {k: v * 1000 / (3 * args.buyers) for k, v in _CPU_BY_REQUEST.items()}
        say(
            f"CPU per paid checkout with the upsell (6 requests, in-process): best {best:.2f} ms; "
            "rounds " + ", ".join(f"{r:.2f}" for r in rounds)
        )
        say(
            "by request (mean of all rounds): "
            + ", ".join(f"{k} {v:.2f} ms" for k, v in by_request.items())
        )
        out = ROOT / ".local" / "bench-checkout-cpu.json"
        out.write_text(
            json.dumps(
                {"best_ms": best, "rounds_ms": rounds, "by_request_ms": by_request}, indent=2
            )
        )
    finally:
        run.close(drop=not (args.keep or args.reuse))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
