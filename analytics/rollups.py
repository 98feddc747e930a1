"""Keeping the dashboard's read models current: drain the change queue, recompute what changed.

Triggers (migration 0004) queue the id of each new event and of each order whose paid time,
lines or ledger changed, inside the writer's transaction; since 0007 also the buyer of a
subscription whose ledger changed (a renewal, its refund or chargeback: their cohort LTV).
`rollups_refresh` takes the queued ids (DELETE … RETURNING, so a row is taken by exactly one
refresh) and, in the same transaction, adds the new events to the daily counters and
first-visit sets and recomputes the changed orders' and their buyers' summaries from the
source tables. A recompute is a pure function of the source rows, so replays, out-of-order
writes and back-dated rows cannot drift.

Concurrency: refreshes of one schema take a transaction-level advisory lock, so they run one
after another; writers never wait (the queue has no unique key). A queue row is visible only
once its writer commits, and everything that writer changed is visible by then too, so a
refresh never reads a change before its queue row and never misses one.

`rollups_rebuild` recomputes everything from scratch (the backfill command), in one
REPEATABLE READ transaction: it sees one snapshot, deletes exactly the queue rows in it, and
leaves later ones for the next refresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.db import connection, transaction

from analytics.selectors import (
    ACCEPTED,
    FUNNEL_STEPS,
    LTV_DAYS,
    OFFERED,
    SESSION_EVENTS,
    _t,
    ledger_matches_line,
    step_sql,
)
from core import orderkeys

Progress = Callable[[str], None]


def _tables() -> dict[str, str]:
    return {
        "event": _t("analytics.Event"),
        "order": _t("storefront.Order"),
        "line": _t("storefront.OrderLine"),
        "ledger": _t("payments.LedgerEntry"),
        "queue": _t("analytics.RollupQueue"),
        "eventday": _t("analytics.EventDay"),
        "vfirst": _t("analytics.VisitorFirst"),
        "vfirstday": _t("analytics.VisitorFirstDay"),
        "vday": _t("analytics.VisitorDay"),
        "osum": _t("analytics.OrderSummary"),
        "lsum": _t("analytics.OfferLineSummary"),
        "csum": _t("analytics.CustomerSummary"),
        # Renewals count in a buyer's LTV: their subscriptions, read by name (above us).
        "sub": _t("subscriptions.Subscription"),
    }


def _run(cursor, sql: str, params: list | None = None) -> int:
    # Without parameters psycopg sends the text as it is, so one call may hold several
    # statements; with them, one statement per call.
    cursor.execute(sql.format(**_tables()), params)
    return cursor.rowcount


def _lock(cursor) -> None:
    cursor.execute(
        "SELECT pg_advisory_xact_lock(hashtext('analytics_rollups:' || %s))",
        [connection.schema_name],
    )


# --- events ---------------------------------------------------------------------------------
# _ev holds the events to add (id, funnel step as name, occurred_at, visitor_id, source,
# offer_id, order_id).

_EVENTS_TEMP = """
CREATE TEMP TABLE IF NOT EXISTS _ev (id bigint, name text, occurred_at timestamptz,
    visitor_id text, source text, offer_id bigint, order_id bigint) ON COMMIT DROP;
TRUNCATE _ev;
"""


def _events_add(cursor) -> None:
    _run(
        cursor,
        """
        INSERT INTO {eventday} (day, name, source, offer_id, events)
        SELECT (occurred_at AT TIME ZONE 'UTC')::date, name, source, coalesce(offer_id, 0),
               count(*)
        FROM _ev GROUP BY 1, 2, 3, 4
        ON CONFLICT (day, name, source, offer_id)
        DO UPDATE SET events = {eventday}.events + EXCLUDED.events""",
    )
    # One session per visitor and UTC day, over all sources and within each.
    _run(
        cursor,
        """
        INSERT INTO {vday} (day, scope, visitor_id)
        SELECT DISTINCT (occurred_at AT TIME ZONE 'UTC')::date, s.scope, visitor_id
        FROM _ev CROSS JOIN LATERAL (VALUES ('*'), ('=' || source)) s(scope)
        WHERE name = ANY(%s) AND visitor_id <> ''
        ON CONFLICT (day, scope, visitor_id) DO NOTHING""",
        [list(SESSION_EVENTS)],
    )
    # First visit per (step, scope, visitor) among the new events.
    _run(
        cursor,
        """
        CREATE TEMP TABLE IF NOT EXISTS _vf (step text, scope text, visitor_id text,
            t timestamptz) ON COMMIT DROP;
        TRUNCATE _vf;""",
    )
    _run(
        cursor,
        """
        INSERT INTO _vf
        SELECT x.step, s.scope, x.visitor_id, min(x.occurred_at)
        FROM (SELECT name AS step, visitor_id, source, occurred_at FROM _ev
              WHERE name = ANY(%s) AND visitor_id <> ''
              UNION ALL
              SELECT 'session', visitor_id, source, occurred_at FROM _ev
              WHERE name = ANY(%s) AND visitor_id <> '') x
        CROSS JOIN LATERAL (VALUES ('*'), ('=' || x.source)) s(scope)
        GROUP BY 1, 2, 3""",
        [list(FUNNEL_STEPS), list(SESSION_EVENTS)],
    )
    # Counters move before the set changes: +1 on the new first day, −1 on the old one when
    # a back-dated event makes an earlier first visit.
    _run(
        cursor,
        """
        INSERT INTO {vfirstday} (day, step, scope, visitors)
        SELECT day, step, scope, sum(d) FROM (
            SELECT (n.t AT TIME ZONE 'UTC')::date AS day, n.step, n.scope, 1 AS d
            FROM _vf n LEFT JOIN {vfirst} v USING (step, scope, visitor_id)
            WHERE v.first_at IS NULL OR n.t < v.first_at
            UNION ALL
            SELECT (v.first_at AT TIME ZONE 'UTC')::date, v.step, v.scope, -1
            FROM _vf n JOIN {vfirst} v USING (step, scope, visitor_id) WHERE n.t < v.first_at
        ) x GROUP BY 1, 2, 3
        ON CONFLICT (day, step, scope)
        DO UPDATE SET visitors = {vfirstday}.visitors + EXCLUDED.visitors""",
    )
    _run(
        cursor,
        """
        INSERT INTO {vfirst} (step, scope, visitor_id, first_at)
        SELECT step, scope, visitor_id, t FROM _vf
        ON CONFLICT (step, scope, visitor_id)
        DO UPDATE SET first_at = EXCLUDED.first_at
        WHERE EXCLUDED.first_at < {vfirst}.first_at""",
    )


# --- orders and buyers ----------------------------------------------------------------------
# _ord holds the order ids to recompute.

_ORDERS_RECOMPUTE = """
DELETE FROM {osum} WHERE order_id IN (SELECT id FROM _ord);
INSERT INTO {osum} (order_id, customer_id, currency, source, core_product_id, offer_ids, paid_at,
                    entries, charged, refunded, charged_back, offered_ids, accepted_ids,
                    taken_ids)
SELECT o.id, o.customer_id, o.currency, o.utm_source,
       (SELECT l.product_id FROM {line} l WHERE l.order_id = o.id AND l.kind = 'core'
        ORDER BY l.id LIMIT 1),
       coalesce((SELECT array_agg(DISTINCT l.offer_id) FROM {line} l
                 WHERE l.order_id = o.id AND l.offer_id IS NOT NULL), '{{}}'),
       o.paid_at, m.entries, m.charged, m.refunded, m.charged_back,
       coalesce((SELECT array_agg(DISTINCT e.offer_id) FROM {event} e WHERE e.order_id = o.id
                 AND e.offer_id IS NOT NULL AND e.name IN ({offered})), '{{}}'),
       coalesce((SELECT array_agg(DISTINCT e.offer_id) FROM {event} e WHERE e.order_id = o.id
                 AND e.offer_id IS NOT NULL AND e.name IN ({accepted})), '{{}}'),
       coalesce((SELECT array_agg(DISTINCT l.offer_id) FROM {line} l
                 WHERE l.order_id = o.id AND l.offer_id IS NOT NULL AND EXISTS (
                     SELECT 1 FROM {ledger} le WHERE {line_match} AND le.kind = 'charge')),
                '{{}}')
FROM {order} o CROSS JOIN LATERAL (
    SELECT count(*) AS entries,
           coalesce(sum(le.amount) FILTER (WHERE le.kind = 'charge'), 0) AS charged,
           coalesce(sum(le.amount) FILTER (WHERE le.kind = 'refund'), 0) AS refunded,
           coalesce(sum(CASE le.kind WHEN 'chargeback' THEN le.amount ELSE -le.amount END)
                FILTER (WHERE le.kind IN ('chargeback', 'reinstated')), 0) AS charged_back
    FROM {ledger} le WHERE le.reference = {order_ref}
) m
WHERE o.id IN (SELECT id FROM _ord) AND o.paid_at IS NOT NULL;

DELETE FROM {lsum} WHERE order_id IN (SELECT id FROM _ord);
INSERT INTO {lsum} (line_id, order_id, kind, offer_id, created_at, paid_at, source,
                    core_product_id, charged, refunded, charged_back)
SELECT l.id, o.id, l.kind, l.offer_id, l.created_at, o.paid_at, o.utm_source,
       (SELECT c.product_id FROM {line} c WHERE c.order_id = o.id AND c.kind = 'core'
        ORDER BY c.id LIMIT 1),
       coalesce(m.charged, 0), coalesce(m.refunded, 0), coalesce(m.charged_back, 0)
FROM {line} l JOIN {order} o ON o.id = l.order_id
CROSS JOIN LATERAL (
    SELECT sum(le.amount) FILTER (WHERE le.kind = 'charge') AS charged,
           sum(le.amount) FILTER (WHERE le.kind = 'refund') AS refunded,
           sum(CASE le.kind WHEN 'chargeback' THEN le.amount ELSE -le.amount END)
                FILTER (WHERE le.kind IN ('chargeback', 'reinstated')) AS charged_back
    FROM {ledger} le WHERE {line_match}
) m
WHERE l.order_id IN (SELECT id FROM _ord) AND o.paid_at IS NOT NULL;

CREATE TEMP TABLE IF NOT EXISTS _cust (id bigint PRIMARY KEY) ON COMMIT DROP;
TRUNCATE _cust;
INSERT INTO _cust SELECT DISTINCT customer_id FROM {order} WHERE id IN (SELECT id FROM _ord)
ON CONFLICT DO NOTHING;
INSERT INTO _cust SELECT id FROM _qc ON CONFLICT DO NOTHING;
DELETE FROM {csum} WHERE customer_id IN (SELECT id FROM _cust);
INSERT INTO {csum} (customer_id, first_order_id, first_at, source, core_product_id,
                    first_offer_ids, first_took, net30, net60, net90, second_paid_at)
SELECT f.customer_id, f.id, f.paid_at, f.utm_source,
       (SELECT l.product_id FROM {line} l WHERE l.order_id = f.id AND l.kind = 'core'
        ORDER BY l.id LIMIT 1),
       coalesce((SELECT array_agg(DISTINCT l.offer_id) FROM {line} l
                 WHERE l.order_id = f.id AND l.offer_id IS NOT NULL), '{{}}'),
       EXISTS (SELECT 1 FROM {line} l WHERE l.order_id = f.id AND l.kind <> 'core'),
       {nets},
       (SELECT p.paid_at FROM {order} p WHERE p.customer_id = f.customer_id
        AND p.paid_at IS NOT NULL ORDER BY p.paid_at, p.id OFFSET 1 LIMIT 1)
FROM (
    SELECT DISTINCT ON (o.customer_id) o.customer_id, o.id, o.paid_at, o.utm_source
    FROM {order} o WHERE o.customer_id IN (SELECT id FROM _cust) AND o.paid_at IS NOT NULL
    ORDER BY o.customer_id, o.paid_at, o.id
) f CROSS JOIN LATERAL (
    SELECT {windows}
    FROM {ledger} le
    WHERE le.reference IN (
        SELECT {p_ref} FROM {order} p
        WHERE p.customer_id = f.customer_id AND p.paid_at IS NOT NULL
        UNION ALL
        SELECT {sub_ref} FROM {sub} s WHERE s.customer_id = f.customer_id)
) m;
"""


def _orders_recompute(cursor) -> None:
    windows = ", ".join(
        "coalesce(sum(CASE WHEN le.kind IN ('charge', 'reinstated') THEN le.amount "
        "ELSE -le.amount END) "
        f"FILTER (WHERE le.created_at < f.paid_at + interval '{d} days'), 0) AS net{d}"
        for d in LTV_DAYS
    )
    nets = ", ".join(f"m.net{d}" for d in LTV_DAYS)
    _run(cursor, _keys(_ORDERS_RECOMPUTE.replace("{windows}", windows).replace("{nets}", nets)))


def _keys(sql: str) -> str:
    """Fill in the key formats (core/orderkeys.py) and event-name sets, so the read models
    join ledger rows to orders and lines exactly as the writers key them."""

    def names(values) -> str:
        return ", ".join(f"'{v}'" for v in values)

    return (
        sql.replace("{line_match}", ledger_matches_line("le", "l"))
        .replace("{order_ref}", orderkeys.order_reference_sql("o.id"))
        .replace("{p_ref}", orderkeys.order_reference_sql("p.id"))
        .replace("{s_ref}", orderkeys.order_reference_sql("s.order_id"))
        .replace("{sub_ref}", orderkeys.subscription_reference_sql("s.id"))
        .replace("{order_re}", orderkeys.ORDER_REFERENCE_RE.replace("{", "{{").replace("}", "}}"))
        .replace("{ref_order_id}", orderkeys.order_id_from_reference_sql("reference"))
        .replace("{offered}", names(OFFERED))
        .replace("{accepted}", names(ACCEPTED))
        .replace("{step}", step_sql(""))
    )


_ORD_TEMP = """
CREATE TEMP TABLE IF NOT EXISTS _ord (id bigint PRIMARY KEY) ON COMMIT DROP;
TRUNCATE _ord;
CREATE TEMP TABLE IF NOT EXISTS _qc (id bigint PRIMARY KEY) ON COMMIT DROP;
TRUNCATE _qc;
"""


def rollups_refresh() -> dict[str, int]:
    """Fold everything queued into the read models; returns how many events and orders.
    Queued page views (analytics/pageviews.py) join the event log first."""
    from analytics.pageviews import page_views_flush

    page_views_flush()
    with transaction.atomic(), connection.cursor() as cursor:
        _lock(cursor)
        _run(cursor, _EVENTS_TEMP + _ORD_TEMP)
        _run(
            cursor,
            """
            WITH taken AS (DELETE FROM {queue} WHERE kind = 'o' RETURNING ref)
            INSERT INTO _ord SELECT DISTINCT ref FROM taken""",
        )
        _run(
            cursor,
            _keys("""
            WITH taken AS (DELETE FROM {queue} WHERE kind = 'e' RETURNING ref)
            INSERT INTO _ev SELECT e.id, {step}, e.occurred_at, e.visitor_id, e.source,
                                   e.offer_id, e.order_id
            FROM {event} e WHERE e.id IN (SELECT ref FROM taken)"""),
        )
        events = cursor.rowcount
        # Buyers whose subscriptions' ledger changed (a renewal, its refund or chargeback).
        _run(
            cursor,
            """
            WITH taken AS (DELETE FROM {queue} WHERE kind = 'c' RETURNING ref)
            INSERT INTO _qc SELECT DISTINCT ref FROM taken""",
        )
        buyers = cursor.rowcount
        # An offer shown or accepted after the order was paid changes its take figures.
        _run(
            cursor,
            """
            INSERT INTO _ord SELECT DISTINCT order_id FROM _ev
            WHERE order_id IS NOT NULL AND offer_id IS NOT NULL
            ON CONFLICT DO NOTHING""",
        )
        _run(cursor, "SELECT count(*) FROM _ord")
        orders = cursor.fetchone()[0]
        if events:
            _events_add(cursor)
        if orders or buyers:
            _orders_recompute(cursor)
    return {"events": events, "orders": orders}


_REBUILD = [
    (
        "daily event counters",
        """
        INSERT INTO {eventday} (day, name, source, offer_id, events)
        SELECT (occurred_at AT TIME ZONE 'UTC')::date, {step}, source, coalesce(offer_id, 0),
               count(*)
        FROM {event} GROUP BY 1, 2, 3, 4""",
    ),
    (
        "first visits",
        """
        INSERT INTO {vfirst} (step, scope, visitor_id, first_at)
        SELECT x.step, s.scope, x.visitor_id, min(x.occurred_at)
        FROM (SELECT {step} AS step, visitor_id, source, occurred_at FROM {event}
              WHERE {step} = ANY(%(funnel)s) AND visitor_id <> ''
              UNION ALL
              SELECT 'session', visitor_id, source, occurred_at FROM {event}
              WHERE name = ANY(%(session)s) AND visitor_id <> '') x
        CROSS JOIN LATERAL (VALUES ('*'), ('=' || x.source)) s(scope)
        GROUP BY 1, 2, 3""",
    ),
    (
        "first-visit counters",
        """
        INSERT INTO {vfirstday} (day, step, scope, visitors)
        SELECT (first_at AT TIME ZONE 'UTC')::date, step, scope, count(*) FROM {vfirst}
        GROUP BY 1, 2, 3""",
    ),
    (
        "visitor days",
        """
        INSERT INTO {vday} (day, scope, visitor_id)
        SELECT DISTINCT (occurred_at AT TIME ZONE 'UTC')::date, s.scope, visitor_id
        FROM {event} CROSS JOIN LATERAL (VALUES ('*'), ('=' || source)) s(scope)
        WHERE name = ANY(%(session)s) AND visitor_id <> ''""",
    ),
    (
        "order summaries",
        """
        INSERT INTO {osum} (order_id, customer_id, currency, source, core_product_id, offer_ids,
                            paid_at, entries, charged, refunded, charged_back, offered_ids,
                            accepted_ids, taken_ids)
        WITH led AS (
            SELECT {ref_order_id} AS order_id, count(*) AS entries,
                   coalesce(sum(amount) FILTER (WHERE kind = 'charge'), 0) AS charged,
                   coalesce(sum(amount) FILTER (WHERE kind = 'refund'), 0) AS refunded,
                   coalesce(sum(CASE kind WHEN 'chargeback' THEN amount ELSE -amount END)
                FILTER (WHERE kind IN ('chargeback', 'reinstated')), 0) AS charged_back
            FROM {ledger} WHERE reference ~ '{order_re}' GROUP BY 1
        ),
        offered AS (
            SELECT order_id, array_agg(DISTINCT offer_id) AS ids FROM {event}
            WHERE name IN ({offered}) AND offer_id IS NOT NULL AND order_id IS NOT NULL
            GROUP BY order_id
        ),
        accepted AS (
            SELECT order_id, array_agg(DISTINCT offer_id) AS ids FROM {event}
            WHERE name IN ({accepted}) AND offer_id IS NOT NULL AND order_id IS NOT NULL
            GROUP BY order_id
        ),
        taken AS (
            SELECT l.order_id, array_agg(DISTINCT l.offer_id) AS ids FROM {line} l
            WHERE l.offer_id IS NOT NULL AND EXISTS (
                SELECT 1 FROM {ledger} le WHERE {line_match} AND le.kind = 'charge')
            GROUP BY l.order_id
        ),
        core AS (
            SELECT DISTINCT ON (order_id) order_id, product_id FROM {line}
            WHERE kind = 'core' ORDER BY order_id, id
        ),
        offers AS (
            SELECT order_id, array_agg(DISTINCT offer_id) AS offer_ids FROM {line}
            WHERE offer_id IS NOT NULL GROUP BY order_id
        )
        SELECT o.id, o.customer_id, o.currency, o.utm_source, core.product_id,
               coalesce(offers.offer_ids, '{{}}'), o.paid_at, coalesce(led.entries, 0),
               coalesce(led.charged, 0), coalesce(led.refunded, 0),
               coalesce(led.charged_back, 0), coalesce(offered.ids, '{{}}'),
               coalesce(accepted.ids, '{{}}'), coalesce(taken.ids, '{{}}')
        FROM {order} o LEFT JOIN led ON led.order_id = o.id
        LEFT JOIN core ON core.order_id = o.id LEFT JOIN offers ON offers.order_id = o.id
        LEFT JOIN offered ON offered.order_id = o.id
        LEFT JOIN accepted ON accepted.order_id = o.id
        LEFT JOIN taken ON taken.order_id = o.id
        WHERE o.paid_at IS NOT NULL""",
    ),
    (
        "offer-line summaries",
        """
        INSERT INTO {lsum} (line_id, order_id, kind, offer_id, created_at, paid_at, source,
                            core_product_id, charged, refunded, charged_back)
        WITH led AS (
            SELECT reference, line_key,
                   sum(amount) FILTER (WHERE kind = 'charge') AS charged,
                   sum(amount) FILTER (WHERE kind = 'refund') AS refunded,
                   sum(CASE kind WHEN 'chargeback' THEN amount ELSE -amount END)
                FILTER (WHERE kind IN ('chargeback', 'reinstated')) AS charged_back
            FROM {ledger} GROUP BY reference, line_key
        ),
        core AS (
            SELECT DISTINCT ON (order_id) order_id, product_id FROM {line}
            WHERE kind = 'core' ORDER BY order_id, id
        )
        SELECT l.id, o.id, l.kind, l.offer_id, l.created_at, o.paid_at, o.utm_source,
               core.product_id, coalesce(le.charged, 0), coalesce(le.refunded, 0),
               coalesce(le.charged_back, 0)
        FROM {line} l JOIN {order} o ON o.id = l.order_id
        LEFT JOIN core ON core.order_id = o.id
        LEFT JOIN led le ON {line_match}
        WHERE o.paid_at IS NOT NULL""",
    ),
    (
        "buyer summaries",
        """
        INSERT INTO {csum} (customer_id, first_order_id, first_at, source, core_product_id,
                            first_offer_ids, first_took, net30, net60, net90, second_paid_at)
        WITH ranked AS (
            SELECT s.*, row_number() OVER w AS n, lead(s.paid_at) OVER w AS next_paid_at
            FROM {osum} s WINDOW w AS (PARTITION BY customer_id ORDER BY paid_at, order_id)
        ),
        firsts AS (SELECT * FROM ranked WHERE n = 1),
        refs AS (
            SELECT customer_id, {s_ref} AS reference FROM {osum} s
            UNION ALL
            SELECT customer_id, {sub_ref} FROM {sub} s
        ),
        nets AS (
            SELECT r.customer_id, {windows}
            FROM refs r JOIN firsts f USING (customer_id)
            JOIN {ledger} le ON le.reference = r.reference
            GROUP BY r.customer_id
        )
        SELECT f.customer_id, f.order_id, f.paid_at, f.source, f.core_product_id, f.offer_ids,
               EXISTS (SELECT 1 FROM {line} l WHERE l.order_id = f.order_id
                       AND l.kind <> 'core'),
               {nets}, f.next_paid_at
        FROM firsts f LEFT JOIN nets m USING (customer_id)""",
    ),
]


def rollups_rebuild(*, progress: Progress | None = None) -> dict[str, int]:
    """Recompute every read model from the source tables (the backfill), set-based: one
    statement per read model, with a progress line after each."""
    say = progress or (lambda _msg: None)
    from analytics.pageviews import page_views_flush

    page_views_flush()
    windows = ", ".join(
        "coalesce(sum(CASE WHEN le.kind IN ('charge', 'reinstated') THEN le.amount "
        "ELSE -le.amount END) "
        f"FILTER (WHERE le.created_at < f.paid_at + interval '{d} days'), 0) AS net{d}"
        for d in LTV_DAYS
    )
    nets = ", ".join(f"coalesce(m.net{d}, 0)" for d in LTV_DAYS)
    outermost = not connection.in_atomic_block
    counts: dict[str, int] = {}
    with transaction.atomic(), connection.cursor() as cursor:
        if outermost:  # inside a caller's transaction, its snapshot rules are the caller's
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        _lock(cursor)
        _run(cursor, "DELETE FROM {queue}")
        _run(cursor, "TRUNCATE {eventday}, {vfirst}, {vfirstday}, {vday}, {osum}, {lsum}, {csum}")
        for label, sql in _REBUILD:
            started = time.monotonic()
            sql = _keys(sql.replace("{windows}", windows).replace("{nets}", nets))
            _run(
                cursor,
                sql,
                {"funnel": list(FUNNEL_STEPS), "session": list(SESSION_EVENTS)}
                if "%(" in sql
                else None,
            )
            counts[label] = cursor.rowcount
            say(f"{label}: {cursor.rowcount:,} rows in {time.monotonic() - started:,.1f}s")
        for table in ("eventday", "vfirst", "vfirstday", "vday", "osum", "lsum", "csum"):
            _run(cursor, f"ANALYZE {{{table}}}")
        _run(cursor, "SELECT coalesce(sum(events), 0)::bigint FROM {eventday}")
        events = cursor.fetchone()[0]
    return {"events": events, "orders": counts["order summaries"]}
