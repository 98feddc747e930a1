"""Keep one process running: restart it when it exits, with backoff (issue 20, item 9).

    python -m devtools.keepalive --name worker -- celery -A config.celery_app worker …

`bin/run` starts the Procfile with honcho, which stops every process when one exits; the
Procfile runs the Celery worker and beat under this wrapper, so a crashed worker comes back
and the web server and the other processes keep running. In production systemd does the same
(deploy/systemd/).

- The child is restarted whatever its exit status, after 1 s, then 2, 4, … up to 30 s while
  it keeps dying within a minute of starting; a run longer than that resets the delay.
- SIGTERM, SIGINT and SIGHUP are passed to the child, and the wrapper exits with the child's
  status once it has stopped: a requested stop is never answered with a restart.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time

FIRST_DELAY = 1.0
MAX_DELAY = 30.0
STABLE_AFTER = 60.0  # a child that ran this long was healthy: start the backoff over


def _say(name: str, text: str) -> None:
    print(f"[keepalive {name}] {text}", file=sys.stderr, flush=True)


def keep_running(command: list[str], *, name: str) -> int:
    stopping = {"signal": None}
    child: subprocess.Popen | None = None

    def forward(signum, _frame):
        stopping["signal"] = signum
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)

    delay = FIRST_DELAY
    restarts = 0
    while True:
        started = time.monotonic()
        child = subprocess.Popen(command)
        if stopping["signal"] is not None:  # a stop that arrived while it was starting
            child.send_signal(stopping["signal"])
        _say(name, f"started pid {child.pid}" + (f" (restart {restarts})" if restarts else ""))
        while True:
            try:
                status = child.wait()
                break
            except KeyboardInterrupt:  # pragma: no cover - the handler above replaces it
                forward(signal.SIGINT, None)
        if stopping["signal"] is not None:
            return status if status >= 0 else 128 - status
        ran = time.monotonic() - started
        if ran >= STABLE_AFTER:
            delay = FIRST_DELAY
        _say(
            name,
            f"pid {child.pid} exited with status {status} after {ran:.1f}s; "
            f"restarting in {delay:g}s",
        )
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and stopping["signal"] is None:
            time.sleep(0.1)
        if stopping["signal"] is not None:
            return 0
        delay = min(delay * 2, MAX_DELAY)
        restarts += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="process")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to keep running after --")
    return keep_running(command, name=args.name)


if __name__ == "__main__":
    sys.exit(main())
