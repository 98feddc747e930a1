"""Metrics straight from the source tables (events, orders, lines, ledger, attempts): the
oracle the read models are tested against, and the answer when a filter is one the read
models cannot give exactly. Definitions: docs/metrics.md."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from analytics.models import Event, EventName
from analytics.selectors.common import (
    ACCEPTED,
    DIRECT,
    FUNNEL_STEPS,
    LTV_DAYS,
    OFFERED,
    ORDER_VALUE_COLUMNS,
    ORDER_VALUE_DAY_COLUMNS,
    REFUND_COLUMNS,
    REFUND_GROUPS,
    SESSION_EVENTS,
    TAKE_RATE_COLUMNS,
    MetricFilter,
    _event_filters,
    _order_filters,
    _rows,
    _Where,
    ledger_matches_line,
    ledger_matches_order,
    step_sql,
)
from core import orderkeys


def funnel_direct(f: MetricFilter) -> list[dict[str, Any]]:
    """Events and distinct visitors at each funnel step (events in [start, end))."""
    w = _Where()
    w.add(f"{step_sql()} = ANY(%s)", list(FUNNEL_STEPS))
    _event_filters(w, f)
    found = {
        r["step"]: r
        for r in _rows(
            f"SELECT {step_sql()} AS step, count(*) AS events, "
            "count(DISTINCT NULLIF(e.visitor_id, '')) AS visitors "
            f"FROM {{event}} e WHERE {w.sql} GROUP BY 1",
            w.params,
        )
    }
    return [found.get(step, {"step": step, "events": 0, "visitors": 0}) for step in FUNNEL_STEPS]


def traffic_direct(f: MetricFilter) -> dict[str, int]:
    """Sessions (distinct visitor × UTC day with a page view or checkout start) and visitors
    (distinct visitor ids) among the events in [start, end)."""
    s = _Where()
    s.add("e.name = ANY(%s)", list(SESSION_EVENTS))
    s.add("e.visitor_id <> ''")
    _event_filters(s, f)
    return _rows(
        "SELECT count(DISTINCT (e.visitor_id, (e.occurred_at AT TIME ZONE 'UTC')::date)) "
        "AS sessions, count(DISTINCT e.visitor_id) AS visitors "
        f"FROM {{event}} e WHERE {s.sql}",
        s.params,
    )[0]


def order_value_direct(f: MetricFilter) -> list[dict[str, Any]]:
    """Per currency: orders paid in [start, end), gross and net (of refunds and chargebacks)
    ledger money on them, AOV, and revenue per session and per visitor."""
    w = _Where()
    w.add("o.paid_at IS NOT NULL")
    w.range("o.paid_at", f)
    _order_filters(w, f)
    traffic = traffic_direct(f)
    return _rows(
        f"""
        WITH paid AS (SELECT o.id FROM {{order}} o WHERE {w.sql}),
        money AS (
            SELECT le.currency,
                   count(DISTINCT le.reference) AS orders,
                   coalesce(sum(le.amount) FILTER (WHERE le.kind = 'charge'), 0) AS gross,
                   coalesce(sum(CASE le.kind WHEN 'reinstated' THEN -le.amount ELSE le.amount END)
                FILTER (WHERE le.kind <> 'charge'), 0) AS returned
            FROM paid JOIN {{ledger}} le ON {ledger_matches_order("le", "paid.id")}
            GROUP BY le.currency
        )
        SELECT {ORDER_VALUE_COLUMNS}
        FROM (SELECT currency, orders, %s::bigint AS sessions, %s::bigint AS visitors,
                     gross::bigint AS gross, returned::bigint AS returned FROM money) m
        ORDER BY currency
        """,
        w.params + [traffic["sessions"], traffic["visitors"]],
    )


def order_value_by_day_direct(f: MetricFilter) -> list[dict[str, Any]]:
    """Per UTC day the order was paid on, and currency: orders paid that day, gross and net
    (of refunds and chargebacks) ledger money on them, AOV and net AOV. The same figures as
    `order_value_direct` over that one day."""
    w = _Where()
    w.add("o.paid_at IS NOT NULL")
    w.range("o.paid_at", f)
    _order_filters(w, f)
    return _rows(
        f"""
        WITH paid AS (
            SELECT o.id, (o.paid_at AT TIME ZONE 'UTC')::date AS day FROM {{order}} o
            WHERE {w.sql}
        ),
        money AS (
            SELECT paid.day, le.currency,
                   count(DISTINCT le.reference) AS orders,
                   coalesce(sum(le.amount) FILTER (WHERE le.kind = 'charge'), 0)::bigint AS gross,
                   coalesce(sum(CASE le.kind WHEN 'reinstated' THEN -le.amount ELSE le.amount END)
                FILTER (WHERE le.kind <> 'charge'), 0)::bigint
                       AS returned
            FROM paid JOIN {{ledger}} le ON {ledger_matches_order("le", "paid.id")}
            GROUP BY paid.day, le.currency
        )
        SELECT {ORDER_VALUE_DAY_COLUMNS} FROM money ORDER BY day, currency
        """,
        w.params,
    )


def offer_states() -> list[dict[str, Any]]:
    """Every offer's id, kind, headline and guardrail state (active, or paused and why), read
    from the offers table by name (analytics imports no app above it)."""
    return _rows(
        "SELECT id AS offer, kind, headline, status, paused_reason FROM {offer} ORDER BY id",
        [],
    )


def take_rates_direct(f: MetricFilter, *, by: str = "offer") -> list[dict[str, Any]]:
    """Over orders paid in [start, end), per offer or per source: orders offered the offer,
    orders that accepted it (ticked or clicked, paid or not) and orders that took it (a
    line of the offer with a charge in the ledger); rate = taken ÷ offered."""
    key = {"offer": "x.offer_id", "source": f"coalesce(nullif(p.utm_source, ''), '{DIRECT}')"}[by]
    w = _Where()
    w.add("o.paid_at IS NOT NULL")
    w.range("o.paid_at", f)
    _order_filters(w, MetricFilter(source=f.source, product_id=f.product_id))
    offer = "AND e.offer_id = %s" if f.offer_id else ""
    line_offer = "AND l.offer_id = %s" if f.offer_id else ""
    params = w.params + ([f.offer_id] if f.offer_id else []) + [list(OFFERED)]
    params += ([f.offer_id] if f.offer_id else []) + [list(ACCEPTED)]
    params += [f.offer_id] if f.offer_id else []
    return _rows(
        f"""
        WITH paid AS (SELECT o.id, o.utm_source FROM {{order}} o WHERE {w.sql}),
        offered AS (
            SELECT DISTINCT e.order_id, e.offer_id FROM {{event}} e
            WHERE e.order_id IN (SELECT id FROM paid) AND e.offer_id IS NOT NULL {offer}
              AND e.name = ANY(%s)
        ),
        accepted AS (
            SELECT DISTINCT e.order_id, e.offer_id FROM {{event}} e
            WHERE e.order_id IN (SELECT id FROM paid) AND e.offer_id IS NOT NULL {offer}
              AND e.name = ANY(%s)
        ),
        taken AS (
            SELECT DISTINCT l.order_id, l.offer_id FROM {{line}} l
            WHERE l.order_id IN (SELECT id FROM paid) AND l.offer_id IS NOT NULL {line_offer}
              AND EXISTS (SELECT 1 FROM {{ledger}} le WHERE {ledger_matches_line("le", "l")}
                          AND le.kind = 'charge')
        )
        SELECT {by}, {TAKE_RATE_COLUMNS}
        FROM (SELECT {key} AS {by}, count(*) AS offered, count(a.order_id) AS accepted,
                     count(t.order_id) AS taken
              FROM offered x JOIN paid p ON p.id = x.order_id
              LEFT JOIN accepted a ON a.order_id = x.order_id AND a.offer_id = x.offer_id
              LEFT JOIN taken t ON t.order_id = x.order_id AND t.offer_id = x.offer_id
              GROUP BY 1) t
        ORDER BY {by}
        """,
        params,
    )


def _line_money_direct(f: MetricFilter) -> tuple[str, list[Any]]:
    """SQL (a CTE body) of every line of the orders paid in [start, end): kind, offer and its
    ledger charged, refunded and charged-back amounts, matched by line key."""
    w = _Where()
    w.add("o.paid_at IS NOT NULL")
    w.range("o.paid_at", f)
    _order_filters(w, MetricFilter(source=f.source, product_id=f.product_id))
    if f.offer_id:
        w.add("l.offer_id = %s", f.offer_id)
    return (
        f"""
        SELECT l.id, l.kind, l.offer_id,
               coalesce(sum(le.amount) FILTER (WHERE le.kind = 'charge'), 0) AS charged,
               coalesce(sum(le.amount) FILTER (WHERE le.kind = 'refund'), 0) AS refunded,
               coalesce(sum(CASE le.kind WHEN 'chargeback' THEN le.amount ELSE -le.amount END)
                FILTER (WHERE le.kind IN ('chargeback', 'reinstated')), 0)
                   AS charged_back
        FROM {{line}} l JOIN {{order}} o ON o.id = l.order_id
        LEFT JOIN {{ledger}} le ON {ledger_matches_line("le", "l")}
        WHERE {w.sql}
        GROUP BY l.id, l.kind, l.offer_id
        """,
        w.params,
    )


def refund_rates_direct(f: MetricFilter, *, by: str = "offer") -> list[dict[str, Any]]:
    """Per line kind and offer (by="offer") or per kind (by="kind"), over the lines of orders
    paid in [start, end): lines sold (charged), refunded in full, refunded in part, charged
    back; the amounts; the rates by lines and by amount."""
    group = ", ".join(REFUND_GROUPS[by])
    lines, params = _line_money_direct(f)
    return _rows(
        f"""
        WITH per_line AS ({lines})
        SELECT {group}, {REFUND_COLUMNS}
        FROM per_line WHERE charged > 0 OR refunded > 0 OR charged_back > 0
        GROUP BY {group} ORDER BY {group}
        """,
        params,
    )


def cohort_ltv_direct(f: MetricFilter, *, as_of: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Net lifetime value by purchase-month cohort, takers vs non-takers.

    A buyer's cohort is the month of their first paid order; a *taker* took an offer on that
    first order (any bump/upsell/downsell/cross-sell line, or the filtered offer's line).
    LTV at N days = charges − refunds − chargebacks on all their orders and on their
    subscriptions' renewals and instalments (ledger references "sub:<id>"), counted when the
    ledger entry is at most N days after the first purchase, averaged over the buyers whose
    N days have passed by `as_of` (others would drag the average down). Repeat rate = buyers
    with a second paid order by `as_of`. Date range and filters apply to the first order.
    """
    as_of = as_of or timezone.now()
    w = _Where()
    w.range("b.first_at", f)
    _order_filters(w, MetricFilter(source=f.source, product_id=f.product_id), order="fo")
    taker_line = "tl.kind <> 'core'" if not f.offer_id else "tl.offer_id = %s"
    windows = ",\n".join(
        f"sum(CASE WHEN le.kind IN ('charge', 'reinstated') THEN le.amount ELSE -le.amount END) "
        f"FILTER (WHERE le.created_at < b.first_at + interval '{d} days') AS net{d}"
        for d in LTV_DAYS
    )
    averages = ",\n".join(
        f"round(avg(coalesce(m.net{d}, 0)) FILTER (WHERE b.first_at + interval '{d} days' <= %s))"
        f"::bigint AS ltv{d}, count(*) FILTER (WHERE b.first_at + interval '{d} days' <= %s) "
        f"AS matured{d}"
        for d in LTV_DAYS
    )
    params: list[Any] = []
    if f.offer_id:
        params.append(f.offer_id)
    params += w.params
    params.append(as_of)  # repeaters
    for _ in LTV_DAYS:
        params += [as_of, as_of]
    return _rows(
        f"""
        WITH paid AS (
            SELECT o.id, o.customer_id, o.paid_at FROM {{order}} o
            WHERE o.paid_at IS NOT NULL
        ),
        firsts AS (
            SELECT DISTINCT ON (customer_id) customer_id, id AS first_order_id, paid_at AS first_at
            FROM paid ORDER BY customer_id, paid_at, id
        ),
        buyers AS (
            SELECT b.customer_id, b.first_at, date_trunc('month', b.first_at) AS cohort,
                   EXISTS (SELECT 1 FROM {{line}} tl WHERE tl.order_id = b.first_order_id
                           AND {taker_line}) AS taker
            FROM firsts b JOIN {{order}} fo ON fo.id = b.first_order_id
            WHERE {w.sql}
        ),
        -- What the buyer paid for: their paid orders and their subscriptions' renewals.
        owned AS (
            SELECT o.customer_id, {orderkeys.order_reference_sql("o.id")} AS reference
            FROM paid o
            UNION ALL
            SELECT s.customer_id, {orderkeys.subscription_reference_sql("s.id")} FROM {{sub}} s
        ),
        money AS (
            SELECT b.customer_id, {windows}
            FROM buyers b JOIN owned w ON w.customer_id = b.customer_id
            JOIN {{ledger}} le ON le.reference = w.reference
            GROUP BY b.customer_id
        ),
        repeaters AS (
            SELECT p.customer_id FROM paid p JOIN buyers b USING (customer_id)
            WHERE p.paid_at <= %s GROUP BY p.customer_id HAVING count(*) >= 2
        )
        SELECT b.cohort::date AS cohort, b.taker, count(*) AS buyers,
               {averages},
               count(r.customer_id) AS repeat_buyers,
               round(count(r.customer_id)::numeric / count(*), 4) AS repeat_rate
        FROM buyers b LEFT JOIN money m USING (customer_id)
        LEFT JOIN repeaters r USING (customer_id)
        GROUP BY b.cohort, b.taker ORDER BY b.cohort, b.taker
        """,
        params,
    )


def time_to_charge(f: MetricFilter) -> dict[str, Any]:
    """Seconds from the upsell/downsell attempt row to its recorded success: p50 and p95."""
    w = _Where()
    w.add("(a.purpose LIKE %s OR a.purpose LIKE %s)", "%:upsell", "%:downsell")
    w.add("a.status = 'succeeded' AND a.finished_at IS NOT NULL")
    w.range("a.created_at", f)
    if f.source is not None or f.product_id or f.offer_id:
        o = _Where()
        _order_filters(o, f)
        w.add(
            f"EXISTS (SELECT 1 FROM {{order}} o WHERE {ledger_matches_order('a', 'o.id')} "
            f"AND {o.sql})",
            *o.params,
        )
    rows = _rows(
        f"""
        SELECT count(*) AS charges,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM a.finished_at - a.created_at)) AS p50_seconds,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM a.finished_at - a.created_at)) AS p95_seconds
        FROM {{attempt}} a WHERE {w.sql}
        """,  # noqa: E501
        w.params,
    )
    return rows[0]


def reliability(f: MetricFilter) -> list[dict[str, Any]]:
    """Idempotency conflicts and upsell failures, by reason."""
    w = _Where()
    w.add("e.name = ANY(%s)", [EventName.IDEMPOTENCY_CONFLICT, EventName.UPSELL_FAILED])
    _event_filters(w, f)
    return _rows(
        f"""
        SELECT {step_sql()} AS event, coalesce(nullif(e.reason, ''), 'unknown') AS reason,
               count(*) AS events
        FROM {{event}} e WHERE {w.sql} GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2
        """,
        w.params,
    )


def alerts(f: MetricFilter, *, limit: int = 50) -> list[dict[str, Any]]:
    """Guardrail pauses, newest first."""
    qs = Event.objects.filter(name=EventName.OFFER_PAUSED)
    if f.start:
        qs = qs.filter(occurred_at__gte=f.start)
    if f.end:
        qs = qs.filter(occurred_at__lt=f.end)
    if f.offer_id:
        qs = qs.filter(offer_id=f.offer_id)
    return list(
        qs.order_by("-occurred_at").values("occurred_at", "offer_id", "reason", "properties")[
            :limit
        ]
    )


def offer_risk_window(
    *,
    offer_id: int | None = None,
    window_start: dt.datetime,
    baseline_start: dt.datetime,
    now: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """For guardrails, per offer: lines charged, lines refunded and chargebacks opened in the
    recent window [window_start, now) and in the baseline [baseline_start, window_start).
    Counted by when the ledger entry happened, so a spike shows up the day it happens. Every
    kind of offer line (bump, upsell, downsell, cross-sell) matches its ledger rows the same
    way (`ledger_matches_line`). A chargeback whose dispute was won (a `reinstated` row of the
    same dispute and line, recorded before `now`) is not counted: only disputes open or lost
    are."""
    now = now or timezone.now()
    w = _Where()
    w.add("l.offer_id IS NOT NULL")
    w.add("le.created_at >= %s AND le.created_at < %s", baseline_start, now)
    if offer_id:
        w.add("l.offer_id = %s", offer_id)
    recent = "le.created_at >= %s"
    chargeback = (
        "le.kind = 'chargeback' AND NOT EXISTS (SELECT 1 FROM {ledger} won "
        "WHERE won.kind = 'reinstated' AND won.gateway_ref = le.gateway_ref "
        "AND won.reference = le.reference AND won.line_key = le.line_key "
        "AND won.created_at < %s)"
    )
    return _rows(
        f"""
        SELECT l.offer_id,
          count(DISTINCT l.id) FILTER (WHERE le.kind = 'charge' AND {recent}) AS recent_sold,
          count(DISTINCT l.id) FILTER (WHERE le.kind = 'refund' AND {recent}) AS recent_refunds,
          count(*) FILTER (WHERE {chargeback} AND {recent}) AS recent_chargebacks,
          count(DISTINCT l.id) FILTER (WHERE le.kind = 'charge' AND NOT {recent}) AS base_sold,
          count(DISTINCT l.id) FILTER (WHERE le.kind = 'refund' AND NOT {recent}) AS base_refunds,
          count(*) FILTER (WHERE {chargeback} AND NOT {recent}) AS base_chargebacks
        FROM {{ledger}} le JOIN {{line}} l ON {ledger_matches_line("le", "l")}
        WHERE {w.sql} GROUP BY l.offer_id ORDER BY l.offer_id
        """,
        [window_start] * 2
        + [now, window_start]
        + [window_start] * 2
        + [now, window_start]
        + w.params,
    )
