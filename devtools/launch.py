"""The two commands: `run` (the platform with a demo creator) and `test` (the whole suite)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from devtools import services

ROOT = services.ROOT


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def _base_env() -> dict[str, str]:
    """The caller's environment, with this virtualenv's scripts (gunicorn, celery) first on PATH."""
    env = dict(os.environ)
    bin_dir = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", os.defpath)])
    env["VIRTUAL_ENV"] = os.path.dirname(bin_dir)
    env.setdefault("PYTHONUNBUFFERED", "1")  # honcho interleaves lines as they come
    return env


def run() -> int:
    port = int(os.environ.get("PORT", "8000"))
    domain = os.environ.get("PLATFORM_DOMAIN", "localhost")
    env = _base_env()
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    env["PLATFORM_DOMAIN"] = domain
    env["PORT"] = str(port)
    env["DATABASE_URL"] = services.postgres_url("storefront")
    env["REDIS_URL"] = services.redis_url()
    env.update(
        services.localstripe_env(port=int(os.environ.get("LOCALSTRIPE_PORT", "8420")), persist=True)
    )
    env["PATH"] = os.pathsep.join([*services.PATH_PREFIX, env["PATH"]])
    env.setdefault("EMAIL_URL", "consolemail://")
    print("[run] migrating every schema…", flush=True)
    _manage(env, "migrate_schemas", "--noinput")
    # The catalog now (seconds); the 90 days of history in the background below.
    _manage(env, "seed_demo", "--no-history")
    if env.get("STRIPE_API_BASE", "").startswith("http://127.0.0.1"):
        try:
            services.localstripe_register_webhook(
                env["STRIPE_API_BASE"],
                f"http://{domain}:{port}/webhooks/stripe/demo/",
                env["STRIPE_WEBHOOK_SECRET"],
            )
        except OSError as exc:
            print(f"[run] could not register the local webhook: {exc}", flush=True)
        try:  # Connect events (account.updated) for every store, on the platform's domain
            services.localstripe_register_webhook(
                env["STRIPE_API_BASE"],
                f"http://{domain}:{port}/webhooks/stripe-connect/",
                env["STRIPE_WEBHOOK_SECRET"],
                name="connect",
            )
        except OSError as exc:
            print(f"[run] could not register the Connect webhook: {exc}", flush=True)
    print(
        "\n"
        f"  Storefront:  http://demo.{domain}:{port}/\n"
        f"  Admin:       http://demo.{domain}:{port}/admin/   login: owner / demo-store-2026\n"
        f"               support role: support@demo.example / demo-support-2026\n"
        f"  Platform:    http://{domain}:{port}/\n"
        f"  Sign up:     http://{domain}:{port}/signup/   (mails go to this console)\n",
        flush=True,
    )
    return _run_with_history(env)


def _honcho(env: dict[str, str], *names: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "honcho", "start", "-f", "Procfile", *names], cwd=ROOT, env=env
    )


def _run_with_history(env: dict[str, str]) -> int:
    """Serve at once; seed the demo's history (storefront/demo_history.py) beside the web
    server, and start the worker and beat when it is done.

    The history is charged through an in-process gateway with the clock set in the past, so
    the periodic jobs must not see it half-made (reconciliation would re-read a seeded
    payment caught in flight from the local Stripe server, which never saw it). The web
    server is safe beside it; a purchase made meanwhile waits in the outbox for the worker.
    A second start finds the history there and starts everything within a second."""
    web = _honcho(env, "web")
    seeding: subprocess.Popen | None = subprocess.Popen(
        [sys.executable, "manage.py", "seed_demo", "--history-only"], cwd=ROOT, env=env
    )
    workers: subprocess.Popen | None = None
    stopping: list[int] = []

    def alive() -> list[subprocess.Popen]:
        return [p for p in (web, seeding, workers) if p is not None and p.poll() is None]

    def forward(signum, _frame):
        stopping.append(signum)
        for child in alive():
            child.send_signal(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    while True:
        if stopping or web.poll() is not None or (workers and workers.poll() is not None):
            if not stopping:
                forward(signal.SIGTERM, None)
            for child in (web, seeding, workers):
                if child is not None:
                    child.wait()
            return web.returncode or 0
        if seeding is not None and seeding.poll() is not None:
            if seeding.returncode:
                print("[run] seeding the demo's history failed (see above)", flush=True)
            seeding = None
            workers = _honcho(env, "worker", "beat")
        time.sleep(0.2)


def _supervise(child: subprocess.Popen) -> int:
    """Wait for the child; on Ctrl-C, SIGTERM or SIGHUP pass the signal on and wait again.

    Returning normally (rather than dying by the signal) lets the atexit hooks in
    devtools.services stop what they started: localstripe, an embedded redis or PostgreSQL.
    """

    def forward(signum, _frame):
        if child.poll() is None:
            child.send_signal(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:  # pragma: no cover - the handler above replaces it
            forward(signal.SIGINT, None)


def test(pytest_args: list[str]) -> int:
    env = _base_env()
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    env["DATABASE_URL"] = services.postgres_url("storefront")
    env["REDIS_URL"] = services.redis_url(db=1)
    env["PATH"] = os.pathsep.join([*services.PATH_PREFIX, env["PATH"]])
    env.update(services.localstripe_env())
    write_bytecode(env)
    print(f"[test] this machine's pace: {pace():.2f} s for 10 M Python additions", flush=True)
    pytest_args = parallel_args(pytest_args, env)
    pytest = subprocess.Popen([sys.executable, "-m", "pytest", *pytest_args], cwd=ROOT, env=env)
    return _supervise(pytest)


def pace() -> float:
    """CPU seconds for 10 M additions in a Python loop (2 M timed, scaled): the yardstick that
    says whether a suite's time changed with the code or with the machine (docs/testing.md).
    The same tree took 200 s on one session's machine and 513 s on another's (pace 0.37 s;
    the first machine's pace was not taken)."""
    started, total = time.process_time(), 0
    for i in range(2_000_000):
        total += i
    return (time.process_time() - started) * 5


PACKAGES = (
    "analytics",
    "api",
    "audit",
    "config",
    "core",
    "devtools",
    "offers",
    "partners",
    "payments",
    "storefront",
    "subscriptions",
    "tenants",
)


def write_bytecode(env: dict[str, str]) -> None:
    """Let the run keep what it compiles, and compile the project once before it starts.

    Some machines set PYTHONDONTWRITEBYTECODE. Then every process the suite starts (three
    pytest workers, every Celery worker, gunicorn and `manage.py` the tests start: over a
    hundred) compiled the project's ~350 modules again, and pytest rewrote the test modules
    and its plugins' in each worker. Compiled files go to `__pycache__/` (ignored by git).
    """
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", *PACKAGES],
        cwd=ROOT,
        env=env,
        check=False,
        stdout=subprocess.DEVNULL,
    )


def parallel_args(pytest_args: list[str], env: dict[str, str]) -> list[str]:
    """The whole suite runs in `TEST_WORKERS` processes (pytest-xdist; 3 unless set).

    Most of a test's wall time is spent waiting (on PostgreSQL, localstripe, a browser, a
    worker process), so three processes share two cores well (figures: docs/testing.md).
    A run of chosen tests (an argument naming a file or folder) stays in one process unless
    `-n` is given: starting the workers costs a few seconds. `TEST_WORKERS=0` runs the suite
    in one process. tests/parallel.py gives each worker its own localstripe, Redis database
    and media folder.
    """
    chosen = any(
        not arg.startswith("-") and os.path.exists(arg.split("::", 1)[0]) for arg in pytest_args
    )
    asked = any(arg == "-n" or arg.startswith(("-n", "--numprocesses")) for arg in pytest_args)
    workers = int(env.get("TEST_WORKERS", "3"))
    if chosen or asked or workers <= 0:
        return pytest_args
    return ["-n", str(workers), "--dist", "worksteal", *pytest_args]


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else "run"
    if command == "run":
        return run()
    if command == "test":
        return test(sys.argv[2:])
    print(f"usage: python -m devtools.launch run|test [pytest args]; got {command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
