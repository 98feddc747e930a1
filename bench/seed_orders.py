"""Seed one tenant with N orders (default 1,000,000) in a separate database and time every
dashboard query.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/storefront_bench_analytics \
      .venv/bin/python bench/seed_orders.py [--orders 1000000] [--batch 100000] [--time-only]
      [--backfill]

After seeding (or with --backfill on an existing database) it migrates the tenant and rebuilds
the dashboard's read models (analytics/rollups.py) with progress, then times each query.

Rows are made by PostgreSQL itself (INSERT … SELECT FROM generate_series), one batch per
transaction with progress shown; pseudo-random but repeatable (a multiplicative hash of the id).
Per order: a core line, a bump for ~25 %, an upsell for ~35 % (with its charge attempt); a
ledger charge per line, refunds on ~5 % of lines and chargebacks on ~0.5 %; funnel events.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

SLUG = "bench"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--time-only", action="store_true", help="skip seeding, time queries")
    parser.add_argument(
        "--backfill", action="store_true", help="skip seeding; migrate, rebuild read models, time"
    )
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if "bench" not in url.rsplit("/", 1)[-1]:
        print("Set DATABASE_URL to a database whose name contains 'bench' (never the dev one).")
        return 2
    _ensure_database(url)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    if not args.time_only:
        print("[bench] migrating the shared schema…", flush=True)
        call_command("migrate_schemas", "--shared", "--noinput", verbosity=0)
        creator = _creator()
        call_command("migrate_schemas", "--schema", creator.schema_name, "--noinput", verbosity=0)
        connection.set_tenant(creator)
        if not args.backfill:
            _seed(connection, args.orders, args.batch)
        _backfill()
    connection.set_tenant(_creator())
    _time_queries()
    return 0


def _ensure_database(url: str) -> None:
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"[bench] created database {name}", flush=True)


def _creator():
    from tenants.models import Creator
    from tenants.services import creator_create

    creator = Creator.objects.filter(slug=SLUG).first()
    if creator is None:
        print("[bench] creating the bench tenant…", flush=True)
        creator = creator_create(
            slug=SLUG,
            display_name="Bench store",
            domain="bench.localhost",
            owner_email="owner@bench.example",
            password="bench-pass-123",
        ).creator
    return creator


# r(k): a repeatable pseudo-random number in [0, 1) for order i and stream k.
R = "((({i} * 2654435761 + {k} * 40503) % 1000003)::float8 / 1000003)"


def r(k: int, i: str = "i") -> str:
    return R.format(i=i, k=k)


SOURCES = "(ARRAY['ig','yt','ads','email','newsletter','direct'])[1 + floor({} * 6)::int]"


def _backfill() -> None:
    from analytics.rollups import rollups_rebuild

    started = time.monotonic()
    done = rollups_rebuild(
        progress=lambda m: print(
            f"[bench] read models: {m} ({time.monotonic() - started:,.0f}s)", flush=True
        )
    )
    print(f"[bench] read models rebuilt in {time.monotonic() - started:,.0f}s: {done}", flush=True)


def _seed(connection, n: int, batch: int) -> None:
    with connection.cursor() as c:
        c.execute("SELECT count(*) FROM storefront_order")
        if c.fetchone()[0]:
            print("[bench] orders already seeded; use --time-only or drop the database.")
            return
        # Bulk rows skip the per-row triggers (the event log's append-only guard and the read
        # models' change queue); the read models are rebuilt in one pass afterwards.
        c.execute("SET session_replication_role = replica")
        # Catalog through the ORM: the offers table gains columns as that app grows.
        from offers.models import Offer
        from storefront.models import Product

        made = [
            Product.objects.create(
                slug=slug, name=slug, price_amount=price, status="active", ladder_position=pos
            )
            for pos, (slug, price) in enumerate((("core", 4900), ("kit", 900), ("pro", 2700)))
        ]
        core, kit, pro = (p.pk for p in made)
        bump = Offer.objects.create(
            kind="bump",
            trigger_product=made[0],
            product=made[1],
            price_amount=900,
            headline="Add the kit",
            benefit="Today",
        ).pk
        upsell = Offer.objects.create(
            kind="upsell",
            trigger_product=made[0],
            product=made[2],
            price_amount=2700,
            headline="Go pro",
            benefit="Live",
        ).pk
        customers = max(1, int(n / 1.4))
        c.execute(f"""INSERT INTO storefront_customer (id, email, created_at)
            SELECT g, 'buyer' || g || '@bench.example', now()
            FROM generate_series(1, {customers}) g""")
        connection.commit() if not connection.get_autocommit() else None
        started = time.monotonic()
        for lo in range(1, n + 1, batch):
            hi = min(n, lo + batch - 1)
            _seed_batch(c, lo, hi, customers, core, kit, pro, bump, upsell)
            done = hi
            rate = done / (time.monotonic() - started)
            print(
                f"[bench] {done:>9,} / {n:,} orders  ({rate:,.0f}/s, "
                f"eta {(n - done) / rate:,.0f}s)",
                flush=True,
            )
        for table in ("storefront_customer", "storefront_order", "storefront_orderline"):
            c.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        print("[bench] VACUUM ANALYZE…", flush=True)
        for table in (
            "storefront_order",
            "storefront_orderline",
            "payments_ledgerentry",
            "payments_chargeattempt",
            "analytics_event",
            "storefront_customer",
        ):
            c.execute(f"VACUUM ANALYZE {table}")
        c.execute("SET session_replication_role = DEFAULT")


def _seed_batch(c, lo, hi, customers, core, kit, pro, bump, upsell) -> None:
    from core import orderkeys

    # Keyed exactly as the checkout and the upsell flow key them (core/orderkeys.py): the
    # upsell line is "upsell:<order>", core and bump lines "line:<id>".
    ref = orderkeys.order_reference_sql("l.order_id")
    key = orderkeys.line_key_sql(kind="l.kind", line_id="l.id", order_id="l.order_id")
    paid = f"(timestamptz '2025-06-01' + {r(1)} * interval '365 days')"
    src = SOURCES.format(r(2))
    c.execute(f"""
        INSERT INTO storefront_order (id, token, customer_id, status, currency, country, region,
          tax_evidence, visitor_id, utm_source, utm_medium, utm_campaign, referrer, variant,
          setup_ref, card_saved, created_at, paid_at)
        SELECT i, 'b' || i, 1 + (i::bigint * 7919) % {customers}, 'paid', 'USD', 'US', '', '{{}}',
               'v' || i, {src}, '', '', '', '', '', true, {paid}, {paid}
        FROM generate_series({lo}, {hi}) i""")
    # Lines: core 3i-2 always, bump 3i-1 if r(3) < .25, upsell 3i if r(4) < .35.
    c.execute(f"""
        INSERT INTO storefront_orderline (id, order_id, kind, product_id, offer_id, description,
          net_amount, tax_amount, total_amount, currency, tax_rate, tax_inclusive, tax_country,
          tax_region, created_at)
        SELECT l.id, o.id, l.kind, l.product, l.offer, l.kind, l.amount, 0, l.amount, 'USD', 0,
               false, 'US', '', o.paid_at
        FROM storefront_order o, LATERAL (VALUES
            (3 * o.id - 2, 'core', {core}, NULL::bigint, 4900, true),
            (3 * o.id - 1, 'bump', {kit}, {bump}, 900, {r(3, "o.id")} < 0.25),
            (3 * o.id, 'upsell', {pro}, {upsell}, 2700, {r(4, "o.id")} < 0.35)
        ) AS l(id, kind, product, offer, amount, present)
        WHERE o.id BETWEEN {lo} AND {hi} AND l.present""")
    c.execute(f"""
        INSERT INTO payments_chargeattempt (purpose, idempotency_key, reference, amount, currency,
          customer_ref, payment_method_ref, off_session, allocation, status, gateway_ref,
          client_secret, decline_code, message, sends, created_at, sent_at, finished_at)
        SELECT {ref} || ':upsell', 'idem-' || l.id, {ref},
               l.total_amount, 'USD', 'cus', 'pm', true, '{{}}', 'succeeded', 'pi_' || l.id, '',
               '', '', 1, l.created_at, l.created_at,
               l.created_at + (0.5 + 6 * {r(5, "l.id")}) * interval '1 second'
        FROM storefront_orderline l
        WHERE l.order_id BETWEEN {lo} AND {hi} AND l.kind = 'upsell'""")
    c.execute(f"""
        INSERT INTO payments_ledgerentry (kind, gateway_ref, reference, line_key, amount, currency,
          created_at)
        SELECT 'charge', 'ch_' || l.id, {ref}, {key}, l.total_amount,
               'USD', l.created_at
        FROM storefront_orderline l WHERE l.order_id BETWEEN {lo} AND {hi}
        UNION ALL
        SELECT 'refund', 're_' || l.id, {ref}, {key}, l.total_amount,
               'USD', l.created_at + {r(6, "l.id")} * interval '30 days'
        FROM storefront_orderline l WHERE l.order_id BETWEEN {lo} AND {hi}
          AND {r(7, "l.id")} < 0.05
        UNION ALL
        SELECT 'chargeback', 'dp_' || l.id, {ref}, {key},
               l.total_amount, 'USD', l.created_at + {r(8, "l.id")} * interval '60 days'
        FROM storefront_orderline l WHERE l.order_id BETWEEN {lo} AND {hi}
          AND {r(9, "l.id")} < 0.005""")
    c.execute(f"""
        INSERT INTO analytics_event (name, occurred_at, visitor_id, customer_id, order_id,
          offer_id, product_id, variant, source, medium, campaign, amount, currency, reason,
          properties)
        SELECT e.name, o.paid_at, o.visitor_id, o.customer_id, o.id, e.offer, e.product, '',
               o.utm_source, '', '', NULL, 'USD', e.reason, '{{}}'
        FROM storefront_order o, LATERAL (VALUES
            ('page_viewed', NULL::bigint, {core}, '', true),
            ('checkout_initiated', NULL, {core}, '', true),
            ('checkout_completed', NULL, NULL, '', true),
            ('bump_offered', {bump}, {kit}, '', true),
            ('bump_accepted', {bump}, {kit}, '', {r(3, "o.id")} < 0.25),
            ('upsell_offered', {upsell}, {pro}, '', true),
            ('upsell_accepted', {upsell}, {pro}, '', {r(4, "o.id")} < 0.35),
            ('upsell_failed', {upsell}, {pro}, 'card_declined', {r(10, "o.id")} < 0.02),
            ('idempotency_conflict', NULL, NULL, 'key_reused', {r(11, "o.id")} < 0.001)
        ) AS e(name, offer, product, reason, present)
        WHERE o.id BETWEEN {lo} AND {hi} AND e.present""")


def _time_queries() -> None:
    from analytics import selectors
    from analytics.rollups import rollups_refresh
    from analytics.selectors import MetricFilter

    # What the dashboard does before it reads: fold the queue (empty here).
    started = time.perf_counter()
    rollups_refresh()
    print(f"[bench] rollups_refresh with nothing queued: {time.perf_counter() - started:.3f} s")

    queries = {
        "funnel": lambda f: selectors.funnel(f),
        "order_value (AOV, revenue/session)": lambda f: selectors.order_value(f),
        "take_rates by offer": lambda f: selectors.take_rates(f, by="offer"),
        "take_rates by source": lambda f: selectors.take_rates(f, by="source"),
        "refund_rates per offer": lambda f: selectors.refund_rates(f),
        "cohort_ltv 30/60/90": lambda f: selectors.cohort_ltv(f),
        "time_to_charge p50/p95": lambda f: selectors.time_to_charge(f),
        "reliability": lambda f: selectors.reliability(f),
    }
    import datetime as dt

    filters = {
        "all time": MetricFilter(),
        "30 days, source=ig": MetricFilter(
            start=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
            end=dt.datetime(2026, 3, 31, tzinfo=dt.UTC),
            source="ig",
        ),
    }
    print(f"\n| query | {' | '.join(filters)} |\n|---|{'---|' * len(filters)}")
    for name, run in queries.items():
        cells = []
        for f in filters.values():
            run(f)  # warm the cache once; report the second run
            started = time.perf_counter()
            run(f)
            cells.append(f"{time.perf_counter() - started:.3f} s")
        print(f"| {name} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
