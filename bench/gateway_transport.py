"""CPU per Stripe SDK call by HTTP transport: the SDK's default `stripe.RequestsClient`, a
urllib3 pool (a candidate, not shipped) and the gateway's `KeptAliveHTTPClient`
(payments/stripe_gateway.py over core.outbound.KeptAliveClient), each making the same calls
to the bench's stub gateway (a process of its own, `--gateway-ms` per answer) over loopback.

    .venv/bin/python -m bench.gateway_transport [--calls 200] [--rounds 5] [--gateway-ms 20]

The figure is this thread's CPU time (`time.thread_time`) per call, best of `--rounds`
rounds, the transports alternated within each round: a POST with an idempotency key
(customers.create) and a GET (setup_intents.retrieve), as the checkout makes them.
"""

from __future__ import annotations

import argparse
import subprocess
import time

import stripe
import urllib3

from bench.harness import PY, ROOT, free_port, say, wait_port
from payments.stripe_gateway import KeptAliveHTTPClient


class Urllib3Client(stripe.HTTPClient):
    """The candidate measured and not kept: a thread-safe urllib3 pool, no retries."""

    name = "urllib3"

    def __init__(self, *, timeout: float):
        super().__init__()
        self.pool = urllib3.PoolManager(
            maxsize=32,
            retries=False,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            ca_certs=stripe.ca_bundle_path,
        )

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        answer = self.pool.request(
            method.upper(), url, headers=headers, body=post_data, redirect=False
        )
        return answer.data, answer.status, answer.headers

    def close(self):
        self.pool.clear()


TRANSPORTS = {
    "requests": lambda: stripe.RequestsClient(timeout=10.0),
    "urllib3": lambda: Urllib3Client(timeout=10.0),
    "kept-alive": lambda: KeptAliveHTTPClient(timeout=10.0),
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--gateway-ms", type=float, default=20)
    args = parser.parse_args()
    port, control = free_port(), free_port()
    stub = subprocess.Popen(
        [PY, "-m", "bench.stub_gateway", "--port", str(port), "--control-port", str(control)]
        + ["--delay-ms", str(args.gateway_ms)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_port(control, "the gateway stub")
        base = {"api": f"http://127.0.0.1:{port}"}
        sdks = {
            name: stripe.StripeClient(
                "sk_test_bench", base_addresses=base, max_network_retries=0, http_client=make()
            )
            for name, make in TRANSPORTS.items()
        }
        customer = sdks["requests"].v1.customers.create(params={"email": "b@example.com"})
        setup = sdks["requests"].v1.setup_intents.create(params={"customer": customer.id}).id
        keys = iter(range(10**9))

        def post(sdk):
            sdk.v1.customers.create(
                params={"email": "b@example.com"}, options={"idempotency_key": f"k{next(keys)}"}
            )

        def get(sdk):
            sdk.v1.setup_intents.retrieve(setup)

        per_call: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):
            for name, sdk in sdks.items():
                for what, call in (("POST", post), ("GET", get)):
                    for _ in range(5):
                        call(sdk)  # warm: the connection is open
                    start = time.thread_time()
                    for _ in range(args.calls):
                        call(sdk)
                    ms = (time.thread_time() - start) * 1000 / args.calls
                    per_call.setdefault((name, what), []).append(ms)
        for (name, what), rounds in per_call.items():
            base_ms = min(per_call[("requests", what)])
            say(
                f"{name:>10} {what:<4} best {min(rounds):.3f} ms per call "
                f"({min(rounds) / base_ms:.2f} of requests); rounds "
                + ", ".join(f"{r:.3f}" for r in rounds)
            )
    finally:
        stub.terminate()
        stub.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
