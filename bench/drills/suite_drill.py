"""Run one of the suite's drill tests several times and print its counts: the webhook replay
(tests/payments/test_webhooks.py: each event three times in random order plus twin events,
five seeds) and the SIGKILLed worker (tests/drills/test_worker_killed.py).

    .venv/bin/python -m bench.drills.suite_drill webhooks [--rounds 2]
    .venv/bin/python -m bench.drills.suite_drill worker [--rounds 3]

Runs through `devtools.launch test` with DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/storefront_bench_drill; the suite uses test_<name>, dropped
afterwards) and REDIS_URL (default db 11 of the machine's Redis, never stopped).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

from bench.harness import PG, ROOT, admin_sql, say

DRILLS = {
    "webhooks": {
        "target": "tests/payments/test_webhooks.py::"
        "test_each_event_three_times_in_random_order_plus_twins_leaves_one_consistent_order",
        "injected": "6 distinct events for one order (payment, charge, refund, dispute and two "
        "twins), each delivered 3 times, shuffled, with the worker catching up at "
        "random points; one seed per test case",
        "per_case": {"orders": 1, "deliveries": 18},
    },
    "worker": {
        "target": "tests/drills/test_worker_killed.py",
        "injected": "SIGKILL of the pool child while it runs release_gated_offers (held inside "
        "its claim by a row lock), then a fresh child",
        "per_case": {"orders": 1, "tasks killed": 1},
    },
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("drill", choices=sorted(DRILLS))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the suite's test database")
    args = parser.parse_args()
    drill = DRILLS[args.drill]
    db_url = os.environ.get("DATABASE_URL", f"{PG}/storefront_bench_drill")
    server, _, name = db_url.rpartition("/")
    if name in ("storefront", "test_storefront"):
        raise SystemExit("refusing the shared database")
    env = dict(
        os.environ,
        DATABASE_URL=db_url,
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/11"),
    )
    passed = failed = 0
    lines: list[str] = []
    try:
        for i in range(args.rounds):
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "devtools.launch",
                    "test",
                    drill["target"],
                    "-s",
                    "-rA",
                    "-p",
                    "no:logging",
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            out = proc.stdout + proc.stderr
            # -rA: one "PASSED <test id>" / "FAILED <test id>" line per case in the summary
            p = len(re.findall(r"^PASSED ", out, re.M))
            f = len(re.findall(r"^(?:FAILED|ERROR) ", out, re.M))
            passed, failed = passed + p, failed + f
            lines += re.findall(r"^.*drill: .*$", out, re.M)
            say(f"round {i + 1}: {p} passed, {f} failed")
            if f or not p:
                print(out[-4000:])
    finally:
        if not args.keep:
            admin_sql(server, f'DROP DATABASE IF EXISTS "test_{name}" WITH (FORCE)')
    cases = passed + failed
    print(f"\n== {args.drill} drill ({drill['target']})")
    print(f"injected:   {drill['injected']}")
    print(
        "operations: "
        + ", ".join(f"{k} {v * cases}" for k, v in drill["per_case"].items())
        + f" ({cases} cases over {args.rounds} rounds)"
    )
    for line in lines:
        print(f"            {line.strip()}")
    print(f"results:    cases with a lost, duplicated or inconsistent result: {failed}")
    return 1 if failed or not cases else 0


if __name__ == "__main__":
    sys.exit(main())
