"""Metric selectors for the dashboard: each is one SQL query, filterable by date range, offer,
product and source.

Each metric reads the read models that analytics/rollups.py keeps (per-order, per-offer-line
and per-buyer summaries; daily event counters; first-visit counters) whenever they can answer
the filter exactly, and otherwise the source tables (the `*_direct` queries, which are also
the oracle the tests compare the read models with). The read models are as fresh as the last
`rollups_refresh` (the dashboard view runs one before reading).

Analytics is the lowest app (DESIGN.md, "Layers"): it may not import storefront, offers or
payments. Their tables are read here with raw SQL, the table names taken from the app registry
(`apps.get_model`) at call time, so there is no import and no cycle, and a renamed table
follows its model. Money comes back as integer minor units, rates as Decimal (PostgreSQL
`numeric`), statistics inside SQL (`percentile_cont`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.apps import apps
from django.db import connection
from django.utils import timezone

from analytics.models import Assignment, Event, EventName, Experiment

OFFERED = (EventName.BUMP_OFFERED, EventName.UPSELL_OFFERED, EventName.DOWNSELL_OFFERED)
ACCEPTED = (EventName.BUMP_ACCEPTED, EventName.UPSELL_ACCEPTED)
FUNNEL_STEPS = (
    EventName.PAGE_VIEWED,
    EventName.CHECKOUT_INITIATED,
    EventName.CHECKOUT_COMPLETED,
    EventName.BUMP_OFFERED,
    EventName.BUMP_ACCEPTED,
    EventName.UPSELL_OFFERED,
    EventName.UPSELL_ACCEPTED,
    EventName.UPSELL_CHARGED,
)
SESSION_EVENTS = (EventName.PAGE_VIEWED, EventName.CHECKOUT_INITIATED)
LTV_DAYS = (30, 60, 90)


@dataclass(frozen=True)
class MetricFilter:
    start: dt.datetime | None = None  # inclusive
    end: dt.datetime | None = None  # exclusive
    offer_id: int | None = None
    product_id: int | None = None
    source: str | None = None


def _t(label: str) -> str:
    return connection.ops.quote_name(apps.get_model(label)._meta.db_table)


def _tables() -> dict[str, str]:
    return {
        "event": _t("analytics.Event"),
        "order": _t("storefront.Order"),
        "line": _t("storefront.OrderLine"),
        "ledger": _t("payments.LedgerEntry"),
        "attempt": _t("payments.ChargeAttempt"),
        "assignment": _t("analytics.Assignment"),
        "eventday": _t("analytics.EventDay"),
        "vfirstday": _t("analytics.VisitorFirstDay"),
        "osum": _t("analytics.OrderSummary"),
        "lsum": _t("analytics.OfferLineSummary"),
        "csum": _t("analytics.CustomerSummary"),
    }


def _rows(sql: str, params: list[Any]) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute(sql.format(**_tables()), params)
        names = [c.name for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


class _Where:
    """Collects SQL conditions and their parameters, in order."""

    def __init__(self) -> None:
        self.parts: list[str] = ["TRUE"]
        self.params: list[Any] = []

    def add(self, sql: str, *params: Any) -> None:
        self.parts.append(sql)
        self.params.extend(params)

    def range(self, column: str, f: MetricFilter) -> None:
        if f.start:
            self.add(f"{column} >= %s", f.start)
        if f.end:
            self.add(f"{column} < %s", f.end)

    @property
    def sql(self) -> str:
        return " AND ".join(self.parts)


def _order_filters(w: _Where, f: MetricFilter, order: str = "o") -> None:
    """Source, product (the order's core product) and offer (the order has a line of it)."""
    if f.source:
        w.add(f"{order}.utm_source = %s", f.source)
    if f.product_id:
        w.add(
            f"EXISTS (SELECT 1 FROM {{line}} pl WHERE pl.order_id = {order}.id "
            "AND pl.kind = 'core' AND pl.product_id = %s)",
            f.product_id,
        )
    if f.offer_id:
        w.add(
            f"EXISTS (SELECT 1 FROM {{line}} fl WHERE fl.order_id = {order}.id "
            "AND fl.offer_id = %s)",
            f.offer_id,
        )


def _event_filters(w: _Where, f: MetricFilter, *, offer_steps_only: bool = False) -> None:
    w.range("e.occurred_at", f)
    if f.source:
        w.add("e.source = %s", f.source)
    if f.product_id:
        # Events before an order exist carry the product; later ones carry the order.
        w.add(
            "(e.product_id = %s OR e.order_id IN (SELECT pl.order_id FROM {line} pl "
            "WHERE pl.kind = 'core' AND pl.product_id = %s))",
            f.product_id,
            f.product_id,
        )
    if f.offer_id:
        w.add(
            "e.offer_id = %s" if offer_steps_only else "(e.offer_id IS NULL OR e.offer_id = %s)",
            f.offer_id,
        )


def funnel_direct(f: MetricFilter) -> list[dict[str, Any]]:
    """Events and distinct visitors at each funnel step."""
    w = _Where()
    w.add("e.name = ANY(%s)", list(FUNNEL_STEPS))
    _event_filters(w, f)
    found = {
        r["step"]: r
        for r in _rows(
            "SELECT e.name AS step, count(*) AS events, "
            "count(DISTINCT NULLIF(e.visitor_id, '')) AS visitors "
            f"FROM {{event}} e WHERE {w.sql} GROUP BY e.name",
            w.params,
        )
    }
    return [found.get(step, {"step": step, "events": 0, "visitors": 0}) for step in FUNNEL_STEPS]


def order_value_direct(f: MetricFilter) -> list[dict[str, Any]]:
    """Per currency: paid orders, gross and net (of refunds and chargebacks) charged, AOV, and
    revenue per session (sessions = distinct visitors with a page view or checkout start)."""
    w = _Where()
    w.add("o.paid_at IS NOT NULL")
    w.range("o.paid_at", f)
    _order_filters(w, f)
    s = _Where()
    s.add("e.name = ANY(%s)", list(SESSION_EVENTS))
    s.add("e.visitor_id <> ''")
    _event_filters(s, f)
    return _rows(
        f"""
        WITH paid AS (SELECT o.id FROM {{order}} o WHERE {w.sql}),
        money AS (
            SELECT le.currency,
                   count(DISTINCT le.reference) AS orders,
                   coalesce(sum(le.amount) FILTER (WHERE le.kind = 'charge'), 0) AS gross,
                   coalesce(sum(le.amount) FILTER (WHERE le.kind <> 'charge'), 0) AS returned
            FROM paid JOIN {{ledger}} le ON le.reference = 'order:' || paid.id
            GROUP BY le.currency
        ),
        sessions AS (SELECT count(DISTINCT e.visitor_id) AS n FROM {{event}} e WHERE {s.sql})
        SELECT m.currency, m.orders, sessions.n AS sessions,
               m.gross::bigint AS gross, (m.gross - m.returned)::bigint AS net,
               round(m.gross::numeric / nullif(m.orders, 0))::bigint AS aov,
               round((m.gross - m.returned)::numeric / nullif(m.orders, 0))::bigint AS net_aov,
               round(m.gross::numeric / nullif(sessions.n, 0))::bigint AS revenue_per_session
        FROM money m CROSS JOIN sessions ORDER BY m.currency
        """,
        w.params + s.params,
    )


def take_rates_direct(f: MetricFilter, *, by: str = "offer") -> list[dict[str, Any]]:
    """Accepted ÷ offered events, per offer or per attribution source."""
    key = {"offer": "e.offer_id", "source": "e.source"}[by]
    w = _Where()
    w.add("e.offer_id IS NOT NULL")
    w.add("e.name = ANY(%s)", list(OFFERED + ACCEPTED))
    _event_filters(w, f, offer_steps_only=True)
    return _rows(
        f"""
        SELECT {by}, offered, accepted, round(accepted::numeric / nullif(offered, 0), 4) AS rate
        FROM (SELECT {key} AS {by}, count(*) FILTER (WHERE e.name = ANY(%s)) AS offered,
                     count(*) FILTER (WHERE e.name = ANY(%s)) AS accepted
              FROM {{event}} e WHERE {w.sql} GROUP BY {key}) t
        ORDER BY {by}
        """,
        [list(OFFERED), list(ACCEPTED)] + w.params,
    )


def refund_rates_direct(f: MetricFilter) -> list[dict[str, Any]]:
    """Per offer: charged lines, lines refunded (any amount), lines charged back, the amounts,
    and the rates (refunded or charged-back lines ÷ charged lines). Lines sold in the range."""
    w = _Where()
    w.add("l.offer_id IS NOT NULL")
    w.range("l.created_at", f)
    _order_filters(w, MetricFilter(source=f.source, product_id=f.product_id))
    if f.offer_id:
        w.add("l.offer_id = %s", f.offer_id)
    return _rows(
        f"""
        WITH lines AS (
            SELECT l.id, l.offer_id FROM {{line}} l JOIN {{order}} o ON o.id = l.order_id
            WHERE {w.sql}
        ),
        per_line AS (
            SELECT lines.offer_id,
                   sum(le.amount) FILTER (WHERE le.kind = 'charge') AS charged,
                   sum(le.amount) FILTER (WHERE le.kind = 'refund') AS refunded,
                   sum(le.amount) FILTER (WHERE le.kind = 'chargeback') AS charged_back
            FROM lines JOIN {{ledger}} le ON le.line_key = 'line:' || lines.id
            GROUP BY lines.id, lines.offer_id
        )
        SELECT offer_id, count(*) FILTER (WHERE charged > 0) AS sold,
               count(*) FILTER (WHERE refunded > 0) AS refunds,
               count(*) FILTER (WHERE charged_back > 0) AS chargebacks,
               coalesce(sum(charged), 0)::bigint AS charged_amount,
               coalesce(sum(refunded), 0)::bigint AS refunded_amount,
               coalesce(sum(charged_back), 0)::bigint AS charged_back_amount,
               round((count(*) FILTER (WHERE refunded > 0))::numeric
                     / nullif(count(*) FILTER (WHERE charged > 0), 0), 4) AS refund_rate,
               round((count(*) FILTER (WHERE charged_back > 0))::numeric
                     / nullif(count(*) FILTER (WHERE charged > 0), 0), 4) AS chargeback_rate
        FROM per_line GROUP BY offer_id ORDER BY offer_id
        """,
        w.params,
    )


def cohort_ltv_direct(f: MetricFilter, *, as_of: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Net lifetime value by purchase-month cohort, takers vs non-takers.

    A buyer's cohort is the month of their first paid order; a *taker* took an offer on that
    first order (any bump/upsell/downsell/cross-sell line, or the filtered offer's line).
    LTV at N days = charges − refunds − chargebacks on all their orders, counted when the
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
        f"sum(CASE WHEN le.kind = 'charge' THEN le.amount ELSE -le.amount END) "
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
        money AS (
            SELECT b.customer_id, {windows}
            FROM buyers b JOIN paid o ON o.customer_id = b.customer_id
            JOIN {{ledger}} le ON le.reference = 'order:' || o.id
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
    if f.source or f.product_id or f.offer_id:
        o = _Where()
        _order_filters(o, f)
        w.add(f"a.reference IN (SELECT 'order:' || o.id FROM {{order}} o WHERE {o.sql})", *o.params)
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
        SELECT e.name AS event, coalesce(nullif(e.reason, ''), 'unknown') AS reason,
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
    Counted by when the ledger entry happened, so a spike shows up the day it happens."""
    now = now or timezone.now()
    w = _Where()
    w.add("l.offer_id IS NOT NULL")
    w.add("le.created_at >= %s AND le.created_at < %s", baseline_start, now)
    if offer_id:
        w.add("l.offer_id = %s", offer_id)
    recent = "le.created_at >= %s"
    return _rows(
        f"""
        SELECT l.offer_id,
          count(DISTINCT l.id) FILTER (WHERE le.kind = 'charge' AND {recent}) AS recent_sold,
          count(DISTINCT l.id) FILTER (WHERE le.kind = 'refund' AND {recent}) AS recent_refunds,
          count(*) FILTER (WHERE le.kind = 'chargeback' AND {recent}) AS recent_chargebacks,
          count(DISTINCT l.id) FILTER (WHERE le.kind = 'charge' AND NOT {recent}) AS base_sold,
          count(DISTINCT l.id) FILTER (WHERE le.kind = 'refund' AND NOT {recent}) AS base_refunds,
          count(*) FILTER (WHERE le.kind = 'chargeback' AND NOT {recent}) AS base_chargebacks
        FROM {{ledger}} le JOIN {{line}} l ON le.line_key = 'line:' || l.id
        WHERE {w.sql} GROUP BY l.offer_id ORDER BY l.offer_id
        """,
        [window_start] * 6 + w.params,
    )


# --- Experiments ----------------------------------------------------------------------------


def experiment_arm_stats(experiment: Experiment) -> list[dict[str, Any]]:
    """Per arm, counted from the experiment's start: visitors assigned, those who took the
    offer, those who bought (a paid order), gross and net revenue, buyers with a refund or
    chargeback, and buyers with two or more paid orders (repeat purchase)."""
    since = experiment.started_at or experiment.created_at
    return _rows(
        """
        WITH a AS (SELECT visitor_key, variant FROM {assignment} WHERE experiment_id = %s),
        took AS (
            SELECT DISTINCT e.visitor_id FROM {event} e JOIN a ON a.visitor_key = e.visitor_id
            WHERE e.offer_id = %s AND e.name = ANY(%s) AND e.occurred_at >= %s
        ),
        orders AS (
            SELECT o.visitor_id, o.id FROM {order} o JOIN a ON a.visitor_key = o.visitor_id
            WHERE o.paid_at IS NOT NULL AND o.paid_at >= %s
        ),
        per_visitor AS (
            SELECT orders.visitor_id, count(DISTINCT orders.id) AS paid_orders,
                   coalesce(sum(le.amount) FILTER (WHERE le.kind = 'charge'), 0) AS gross,
                   coalesce(sum(le.amount) FILTER (WHERE le.kind <> 'charge'), 0) AS returned
            FROM orders LEFT JOIN {ledger} le ON le.reference = 'order:' || orders.id
            GROUP BY orders.visitor_id
        )
        SELECT a.variant AS arm, count(*) AS visitors, count(took.visitor_id) AS takers,
               count(pv.visitor_id) AS buyers,
               coalesce(sum(pv.gross), 0)::bigint AS gross,
               coalesce(sum(pv.gross - pv.returned), 0)::bigint AS net,
               count(*) FILTER (WHERE pv.returned > 0) AS refunded_buyers,
               count(*) FILTER (WHERE pv.paid_orders >= 2) AS repeat_buyers
        FROM a LEFT JOIN took ON took.visitor_id = a.visitor_key
        LEFT JOIN per_visitor pv ON pv.visitor_id = a.visitor_key
        GROUP BY a.variant ORDER BY a.variant
        """,
        [experiment.pk, experiment.offer_id, list(ACCEPTED), since, since],
    )


def experiment_assignment_count(experiment: Experiment) -> int:
    return Assignment.objects.filter(experiment=experiment).count()


def rate(part: int, whole: int) -> Decimal | None:
    """A share as a Decimal to 4 places (half up), None when there is nothing to divide by."""
    if not whole:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


# --- Over the read models (analytics/rollups.py) --------------------------------------------


def _midnight(value: dt.datetime | None) -> bool:
    return value is None or (
        value.utcoffset() == dt.timedelta(0)
        and (value.hour, value.minute, value.second, value.microsecond) == (0, 0, 0, 0)
    )


def _day_counters_answer(f: MetricFilter) -> bool:
    """Daily counters are exact for whole UTC days, without a product filter (an event matches
    a product through its order's core line, which the counters do not carry)."""
    return f.product_id is None and _midnight(f.start) and _midnight(f.end)


def _first_visits_answer(f: MetricFilter) -> bool:
    """First-visit counters give exact distinct visitors from the beginning up to a whole day,
    by source, without a product or offer filter."""
    return f.start is None and _midnight(f.end) and f.product_id is None and f.offer_id is None


def _day_range(w: _Where, f: MetricFilter, column: str = "day") -> None:
    if f.start:
        w.add(f"{column} >= %s", f.start.date())
    if f.end:
        w.add(f"{column} < %s", f.end.date())


def _first_visitors(steps: list[str], f: MetricFilter) -> dict[str, int]:
    w = _Where()
    w.add("step = ANY(%s)", steps)
    w.add("scope = %s", "=" + f.source if f.source else "*")
    if f.end:
        w.add("day < %s", f.end.date())
    rows = _rows(
        f"SELECT step, sum(visitors)::bigint AS n FROM {{vfirstday}} WHERE {w.sql} GROUP BY step",
        w.params,
    )
    return {r["step"]: r["n"] for r in rows}


def funnel(f: MetricFilter) -> list[dict[str, Any]]:
    """Events and distinct visitors at each funnel step."""
    if not (_day_counters_answer(f) and _first_visits_answer(f)):
        return funnel_direct(f)
    w = _Where()
    w.add("name = ANY(%s)", list(FUNNEL_STEPS))
    _day_range(w, f)
    if f.source:
        w.add("source = %s", f.source)
    events = {
        r["step"]: r["n"]
        for r in _rows(
            f"SELECT name AS step, sum(events)::bigint AS n FROM {{eventday}} WHERE {w.sql} "
            "GROUP BY name",
            w.params,
        )
    }
    visitors = _first_visitors(list(FUNNEL_STEPS), f)
    return [
        {"step": step, "events": events.get(step, 0), "visitors": visitors.get(step, 0)}
        for step in FUNNEL_STEPS
    ]


def _summary_filters(w: _Where, f: MetricFilter, *, time: str, offers: str | None) -> None:
    w.range(time, f)
    if f.source:
        w.add("source = %s", f.source)
    if f.product_id:
        w.add("core_product_id = %s", f.product_id)
    if f.offer_id and offers:
        w.add(f"%s = ANY({offers})", f.offer_id)


def order_value(f: MetricFilter) -> list[dict[str, Any]]:
    """Per currency: paid orders, gross and net (of refunds and chargebacks) charged, AOV, and
    revenue per session (sessions = distinct visitors with a page view or checkout start)."""
    if _first_visits_answer(f):
        sessions = _first_visitors(["session"], f).get("session", 0)
    else:
        s = _Where()
        s.add("e.name = ANY(%s)", list(SESSION_EVENTS))
        s.add("e.visitor_id <> ''")
        _event_filters(s, f)
        sessions = _rows(
            f"SELECT count(DISTINCT e.visitor_id) AS n FROM {{event}} e WHERE {s.sql}", s.params
        )[0]["n"]
    w = _Where()
    w.add("entries > 0")
    _summary_filters(w, f, time="paid_at", offers="offer_ids")
    return _rows(
        f"""
        SELECT currency, orders, sessions, gross, gross - returned AS net,
               round(gross::numeric / nullif(orders, 0))::bigint AS aov,
               round((gross - returned)::numeric / nullif(orders, 0))::bigint AS net_aov,
               round(gross::numeric / nullif(sessions, 0))::bigint AS revenue_per_session
        FROM (SELECT currency, count(*) AS orders, %s::bigint AS sessions,
                     sum(charged)::bigint AS gross,
                     sum(refunded + charged_back)::bigint AS returned
              FROM {{osum}} WHERE {w.sql} GROUP BY currency) m
        ORDER BY currency
        """,
        [sessions] + w.params,
    )


def take_rates(f: MetricFilter, *, by: str = "offer") -> list[dict[str, Any]]:
    """Accepted ÷ offered events, per offer or per attribution source."""
    if not _day_counters_answer(f):
        return take_rates_direct(f, by=by)
    key = {"offer": "offer_id", "source": "source"}[by]
    w = _Where()
    w.add("offer_id <> 0")
    w.add("name = ANY(%s)", list(OFFERED + ACCEPTED))
    _day_range(w, f)
    if f.source:
        w.add("source = %s", f.source)
    if f.offer_id:
        w.add("offer_id = %s", f.offer_id)
    return _rows(
        f"""
        SELECT {by}, offered, accepted, round(accepted::numeric / nullif(offered, 0), 4) AS rate
        FROM (SELECT {key} AS {by},
                     coalesce(sum(events) FILTER (WHERE name = ANY(%s)), 0)::bigint AS offered,
                     coalesce(sum(events) FILTER (WHERE name = ANY(%s)), 0)::bigint AS accepted
              FROM {{eventday}} WHERE {w.sql} GROUP BY {key}) t
        ORDER BY {by}
        """,
        [list(OFFERED), list(ACCEPTED)] + w.params,
    )


def refund_rates(f: MetricFilter) -> list[dict[str, Any]]:
    """Per offer: charged lines, lines refunded (any amount), lines charged back, the amounts,
    and the rates (refunded or charged-back lines ÷ charged lines). Lines sold in the range."""
    w = _Where()
    w.add("(charged > 0 OR refunded > 0 OR charged_back > 0)")
    _summary_filters(w, f, time="created_at", offers=None)
    if f.offer_id:
        w.add("offer_id = %s", f.offer_id)
    return _rows(
        f"""
        SELECT offer_id, count(*) FILTER (WHERE charged > 0) AS sold,
               count(*) FILTER (WHERE refunded > 0) AS refunds,
               count(*) FILTER (WHERE charged_back > 0) AS chargebacks,
               sum(charged)::bigint AS charged_amount,
               sum(refunded)::bigint AS refunded_amount,
               sum(charged_back)::bigint AS charged_back_amount,
               round((count(*) FILTER (WHERE refunded > 0))::numeric
                     / nullif(count(*) FILTER (WHERE charged > 0), 0), 4) AS refund_rate,
               round((count(*) FILTER (WHERE charged_back > 0))::numeric
                     / nullif(count(*) FILTER (WHERE charged > 0), 0), 4) AS chargeback_rate
        FROM {{lsum}} WHERE {w.sql} GROUP BY offer_id ORDER BY offer_id
        """,
        w.params,
    )


def cohort_ltv(f: MetricFilter, *, as_of: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Net lifetime value by purchase-month cohort, takers vs non-takers (definitions in
    `cohort_ltv_direct`), from the per-buyer summary."""
    as_of = as_of or timezone.now()
    w = _Where()
    _summary_filters(w, f, time="first_at", offers=None)
    taker = "%s = ANY(first_offer_ids)" if f.offer_id else "first_took"
    # Matured = first purchase at least N days before as_of: the cut-offs are computed once
    # here, so each of the ~N buyers' rows costs a timestamp comparison, not date arithmetic.
    averages = ",\n".join(
        f"round(avg(net{d}) FILTER (WHERE first_at <= %s))::bigint AS ltv{d}, "
        f"count(*) FILTER (WHERE first_at <= %s) AS matured{d}"
        for d in LTV_DAYS
    )
    params: list[Any] = [f.offer_id] if f.offer_id else []
    for d in LTV_DAYS:
        params += [as_of - dt.timedelta(days=d)] * 2
    params += [as_of, as_of] + w.params
    return _rows(
        f"""
        SELECT date_trunc('month', first_at AT TIME ZONE 'UTC')::date AS cohort,
               {taker} AS taker, count(*) AS buyers, {averages},
               count(*) FILTER (WHERE second_paid_at <= %s) AS repeat_buyers,
               round((count(*) FILTER (WHERE second_paid_at <= %s))::numeric / count(*), 4)
                   AS repeat_rate
        FROM {{csum}} WHERE {w.sql}
        GROUP BY 1, 2 ORDER BY 1, 2
        """,
        params,
    )
