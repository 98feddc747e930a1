"""Renewals at scale: S stores with N due subscriptions each, billed by the renewal job
(`subscriptions.services.renewals_run`, what beat runs per store) against the gateway stub.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/storefront_bench_renewals \
      .venv/bin/python bench/renewals.py [--stores 100] [--per-store 1000] [--threads 2]

Subscriptions are seeded by PostgreSQL (INSERT … SELECT FROM generate_series), all due now.
Stores are billed by `--threads` threads (or, with `--processes`, that many forked processes
as Celery's prefork workers), one store at a time each (as workers take the
fanned-out tasks). Prints renewals per second and the wall time, then checks every period was
charged exactly once (the stub's charges per attempt key). The database is kept for reruns
(each run clears the stores' subscriptions and seeds them due again).

In the same run, while the renewals are billed, one more thread plays buyers in the first
store through the hosted pages in-process (Django's test client, the same stub): checkout
start → pay → offer page → the one-click upsell accept, and times the accept POST (the
one-click accept path). It stops when the renewals are done (`--accepts` caps it). Printed:
accepts, their p50/p95 latency and what a renewal costs against an accept.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stores", type=int, default=100)
    parser.add_argument("--per-store", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--processes",
        action="store_true",
        help="bill on --threads forked processes (as Celery's prefork workers) instead of threads",
    )
    parser.add_argument("--accepts", type=int, default=2000, help="most one-click accepts")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if "bench" not in url.rsplit("/", 1)[-1]:
        print("Set DATABASE_URL to a database whose name contains 'bench' (never the dev one).")
        return 2
    from bench.seed_orders import _ensure_database

    _ensure_database(url)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from bench.stub_gateway import StubGateway
    from payments.gateway import use_gateway
    from payments.stripe_gateway import StripeGateway

    call_command("migrate_schemas", "--shared", "--noinput", verbosity=0)
    stores = [_store(f"renew{i:03d}") for i in range(args.stores)]
    total = 0
    started = time.monotonic()
    for creator in stores:
        connection.set_tenant(creator)
        total += _seed(connection, args.per_store)
    print(
        f"[bench] seeded {total} due subscriptions in {len(stores)} stores "
        f"({time.monotonic() - started:.1f} s)",
        flush=True,
    )

    stub = StubGateway(delay=0).start()
    use_gateway(StripeGateway(secret_key="sk_test_bench", api_base=stub.base, timeout=10.0))
    work: queue.Queue = queue.Queue()
    for creator in stores:
        work.put(creator)
    renewed = [0]
    lock = threading.Lock()

    def worker() -> None:
        from subscriptions.services import renewals_run

        while True:
            try:
                creator = work.get_nowait()
            except queue.Empty:
                break
            connection.set_tenant(creator)
            run = renewals_run()
            with lock:
                renewed[0] += run.renewed
        connection.close()

    accepts = Accepts(_accept_store(stores[0]), limit=args.accepts)
    done = threading.Event()
    buyer = threading.Thread(target=accepts.run, args=(done,))
    if args.processes:
        wall = _bill_in_processes(stores, args.threads, renewed, accepts, buyer)
    else:
        started = time.monotonic()
        threads = [threading.Thread(target=worker) for _ in range(args.threads)]
        buyer.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - started
    done.set()
    buyer.join()
    stats = stub.stats()
    stub.stop()
    unit = "processes" if args.processes else "threads"
    print(
        f"[bench] renewal run: {renewed[0]} renewals in {wall:.1f} s = "
        f"{renewed[0] / wall:.1f} renewals/s ({args.threads} {unit}, {len(stores)} stores); "
        f"gateway charges {stats['payment_intents']} (renewals + the buyers' checkouts and "
        f"accepts), attempt keys charged twice {stats['attempt_keys_charged_twice']}",
        flush=True,
    )
    per_renewal = wall * args.threads / max(renewed[0], 1)
    print(accepts.report(per_renewal), flush=True)
    charges = renewed[0] + accepts.charges
    ok = (
        renewed[0] == total
        and charges == stats["payment_intents"]
        and not stats["attempt_keys_charged_twice"]
        and not accepts.errors
    )
    return 0 if ok else 1


def _bill_in_processes(stores, n: int, renewed: list, accepts, buyer) -> float:
    """Bill the stores on N forked processes, each taking the next store from a shared queue
    (as prefork Celery workers take fanned-out tasks); the buyer thread runs in this process
    next to the gateway stub. Prints progress every 30 s. Returns the wall time."""
    import multiprocessing

    from django.db import connections

    connections.close_all()  # a forked child must not share this process's connections
    ctx = multiprocessing.get_context("fork")
    work, results = ctx.Queue(), ctx.Queue()
    for creator in stores:
        work.put(creator.pk)
    for _ in range(n):
        work.put(None)
    started = time.monotonic()
    children = [ctx.Process(target=_bill_child, args=(work, results)) for _ in range(n)]
    for child in children:
        child.start()
    buyer.start()  # after the fork: no child inherits the buyer's connection
    finished, last = 0, started
    while finished < n:
        try:
            count = results.get(timeout=5)
        except queue.Empty:
            if any(c.exitcode not in (None, 0) for c in children):
                raise SystemExit("[bench] a billing process died") from None
            continue
        if count is None:
            finished += 1
            continue
        renewed[0] += count
        if time.monotonic() - last >= 30:
            last = time.monotonic()
            elapsed = last - started
            print(
                f"[bench] … {renewed[0]} renewed in {elapsed:.0f} s "
                f"({renewed[0] / elapsed:.1f}/s), {len(accepts.latencies)} accepts",
                flush=True,
            )
    wall = time.monotonic() - started
    for child in children:
        child.join()
    return wall


def _bill_child(work, results) -> None:
    from django.db import connection

    from subscriptions.services import renewals_run
    from tenants.models import Creator

    while (pk := work.get()) is not None:
        connection.set_tenant(Creator.objects.get(pk=pk))
        results.put(renewals_run().renewed)
    connection.close()
    results.put(None)


class Accepts:
    """Buyers of the first store through the hosted pages, in-process, one after another
    while the renewals run: each buys the core product (one charge) and accepts the upsell
    with one click (one more); the accept POST is timed."""

    def __init__(self, host: str, *, limit: int) -> None:
        self.host, self.limit = host, limit
        self.latencies: list[float] = []
        self.charges = 0
        self.errors: list[str] = []

    def run(self, done: threading.Event) -> None:
        import re

        from django.db import connection
        from django.test import Client

        tag = f"{int(time.time())}"
        n = 0
        while not done.is_set() and n < self.limit:
            n += 1
            # Each buyer from their own address, as on the internet (the per-address limits).
            address = f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
            client = Client(HTTP_HOST=self.host, REMOTE_ADDR=address)
            started = client.post(
                "/checkout/course/start",
                {"email": f"a{tag}-{n}@accept.example", "country": "US", "save_card": "on"},
            )
            if started.status_code != 200:
                self.errors.append(f"start {started.status_code}")
                break
            body = started.json()
            setup = body["setup_client_secret"].split("_secret_")[0]
            paid = client.post(body["pay_url"], {"setup_intent": setup}).json()
            if paid.get("status") != "paid":
                self.errors.append(f"pay {paid}")
                break
            self.charges += 1
            order = body["order"]
            page = client.get(f"/o/{order}/offer").content.decode()
            found = re.search(r'name="token" value="([^"]+)"', page)
            if found is None:
                self.errors.append("no offer page")
                break
            t0 = time.perf_counter()
            accepted = client.post(f"/o/{order}/offer/accept", {"token": found.group(1)})
            self.latencies.append(time.perf_counter() - t0)
            if accepted.status_code != 303:
                self.errors.append(f"accept {accepted.status_code}")
                break
            self.charges += 1
        connection.close()

    def report(self, per_renewal: float) -> str:
        if not self.latencies:
            return f"[bench] one-click accepts: none measured {self.errors}"
        ordered = sorted(self.latencies)
        p50 = ordered[len(ordered) // 2]
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        mean = sum(ordered) / len(ordered)
        return (
            f"[bench] one-click accepts in the same run: {len(ordered)} accepts, "
            f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, mean {mean * 1000:.0f} ms "
            f"(= {1 / mean:.1f} accepts/s on one thread); a renewal took {per_renewal * 1000:.0f}"
            f" ms of a thread = {per_renewal / mean:.2f}x a one-click accept"
            + (f"; errors {self.errors}" if self.errors else "")
        )


def _accept_store(creator) -> str:
    """The first store sells the bench catalog's core product with a one-click upsell, and
    takes payments (its owner's email verified). Returns its host."""
    from django.db import connection
    from django.utils import timezone

    from offers.models import Offer, OfferKind
    from storefront.models import Product
    from tenants.models import Creator

    Creator.objects.filter(pk=creator.pk, email_verified_at__isnull=True).update(
        email_verified_at=timezone.now()
    )
    connection.set_tenant(Creator.objects.get(pk=creator.pk))
    if not Product.objects.filter(slug="course").exists():

        def product(slug, name, price, pos):
            return Product.objects.create(
                slug=slug,
                name=name,
                price_amount=price,
                currency="USD",
                status=Product.Status.ACTIVE,
                ladder_position=pos,
                description=name,
                deliverable_url=f"https://files.example/{slug}.zip",
            )

        core = product("course", "Photo course", 4900, 1)
        master = product("masterclass", "Editing masterclass", 2400, 3)
        Offer.objects.create(
            kind=OfferKind.UPSELL,
            trigger_product=core,
            product=master,
            price_amount=1900,
            headline="Add the masterclass",
            benefit="Finish every photo in five minutes.",
        )
    connection.set_schema_to_public()
    return f"{creator.slug}.localhost"


def _store(slug: str):
    from tenants.models import Creator
    from tenants.services import creator_create

    creator = Creator.objects.filter(slug=slug).first()
    if creator is None:
        creator = creator_create(
            slug=slug,
            display_name=slug,
            domain=f"{slug}.localhost",
            owner_email=f"owner@{slug}.example",
            password="bench-pass-123",
        ).creator
    return creator


def _seed(connection, n: int) -> int:
    """N subscriptions (one customer each) to one monthly plan, all due a minute ago. Earlier
    runs' rows are cleared first, so a rerun measures the same work."""
    with connection.cursor() as c:
        c.execute(
            "TRUNCATE subscriptions_notice, subscriptions_subscriptionevent, "
            "subscriptions_subscriptionperiod, subscriptions_subscription, "
            "payments_ledgerentry, payments_chargeattempt CASCADE"
        )
        c.execute(
            "INSERT INTO storefront_product (slug, name, description, tier, ladder_position, "
            "price_amount, currency, refund_terms, deliverable_url, deliverable_file, status, "
            "created_at) SELECT 'club', 'Club', '', 'entry', 0, 1500, 'USD', '', '', '', "
            "'active', now() WHERE NOT EXISTS (SELECT 1 FROM storefront_product WHERE slug='club')"
        )
        c.execute("SELECT id FROM storefront_product WHERE slug = 'club'")
        product_id = c.fetchone()[0]
        c.execute(
            "INSERT INTO subscriptions_plan (product_id, kind, interval_unit, interval_count, "
            "trial_days, setup_fee_amount, created_at) SELECT %s, 'subscription', 'month', 1, "
            "0, 0, now() WHERE NOT EXISTS (SELECT 1 FROM subscriptions_plan WHERE product_id=%s)",
            [product_id, product_id],
        )
        c.execute(
            "INSERT INTO storefront_customer (email, created_at) SELECT 'sub' || g || "
            "'@bench.example', now() FROM generate_series(1, %s) g ON CONFLICT DO NOTHING",
            [n],
        )
        c.execute(
            "INSERT INTO subscriptions_subscription (customer_id, product_id, line_key, kind, "
            "interval_unit, interval_count, amount, tax_amount, currency, anchor, status, "
            "next_period, next_charge_at, paid_through, cancel_at_period_end, customer_ref, "
            "payment_method_ref, card_exp_month, card_exp_year, end_reason, created_at) "
            "SELECT id, %s, '', 'subscription', 'month', 1, 1500, 0, 'USD', "
            "now() - interval '1 month' - interval '1 minute', 'active', 1, "
            "now() - interval '1 minute', now() - interval '1 minute', false, "
            "'cus_b' || id, 'pm_b' || id, 12, 2034, '', now() "
            "FROM storefront_customer WHERE email LIKE '%%@bench.example' ORDER BY id LIMIT %s",
            [product_id, n],
        )
        return c.rowcount


if __name__ == "__main__":
    raise SystemExit(main())
