"""The two commands: `run` (the platform with a demo creator) and `test` (the whole suite)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

from devtools import services

ROOT = services.ROOT


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def run() -> int:
    port = int(os.environ.get("PORT", "8000"))
    domain = os.environ.get("PLATFORM_DOMAIN", "localhost")
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    env["PLATFORM_DOMAIN"] = domain
    env["PORT"] = str(port)
    env["DATABASE_URL"] = services.postgres_url("storefront")
    env["REDIS_URL"] = services.redis_url()
    env.update(services.localstripe_env(port=int(os.environ.get("LOCALSTRIPE_PORT", "8420")), persist=True))
    env.setdefault("EMAIL_URL", "consolemail://")
    print("[run] migrating every schema…", flush=True)
    _manage(env, "migrate_schemas", "--noinput")
    _manage(env, "seed_demo")
    if env.get("STRIPE_API_BASE", "").startswith("http://127.0.0.1"):
        try:
            services.localstripe_register_webhook(
                env["STRIPE_API_BASE"],
                f"http://{domain}:{port}/webhooks/stripe/demo/",
                env["STRIPE_WEBHOOK_SECRET"],
            )
        except OSError as exc:
            print(f"[run] could not register the local webhook: {exc}", flush=True)
    print(
        "\n"
        f"  Storefront:  http://demo.{domain}:{port}/\n"
        f"  Admin:       http://demo.{domain}:{port}/admin/   login: owner / demo-store-2026\n"
        f"  Platform:    http://{domain}:{port}/\n",
        flush=True,
    )
    honcho = subprocess.Popen(
        [sys.executable, "-m", "honcho", "start", "-f", "Procfile"], cwd=ROOT, env=env
    )
    try:
        return honcho.wait()
    except KeyboardInterrupt:
        honcho.send_signal(signal.SIGINT)
        return honcho.wait()


def test(pytest_args: list[str]) -> int:
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    env["DATABASE_URL"] = services.postgres_url("storefront")
    env["REDIS_URL"] = services.redis_url()
    env.update(services.localstripe_env())
    result = subprocess.run([sys.executable, "-m", "pytest", *pytest_args], cwd=ROOT, env=env)
    return result.returncode


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
