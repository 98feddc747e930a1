"""The dashboard's metrics over the read models analytics/rollups.py keeps (daily step
counters, first visits, visitor-days, per-order, per-line and per-buyer summaries). Each
answers from them when they give the filter's answer exactly, and otherwise falls back to
its `*_direct` oracle. The read models are as fresh as the last `rollups_refresh`: the
dashboard and the partner API run one before reading."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from analytics.selectors.common import (
    DIRECT,
    FUNNEL_STEPS,
    LTV_DAYS,
    ORDER_VALUE_COLUMNS,
    ORDER_VALUE_DAY_COLUMNS,
    REFUND_COLUMNS,
    REFUND_GROUPS,
    TAKE_RATE_COLUMNS,
    MetricFilter,
    _rows,
    _Where,
)
from analytics.selectors.direct import funnel_direct, traffic_direct


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


def _scope(f: MetricFilter) -> str:
    return "*" if f.source is None else "=" + f.source


def _first_visitors(steps: list[str], f: MetricFilter) -> dict[str, int]:
    w = _Where()
    w.add("step = ANY(%s)", steps)
    w.add("scope = %s", _scope(f))
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
    if f.source is not None:
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


def traffic(f: MetricFilter) -> dict[str, int]:
    """Sessions and visitors (definitions in `traffic_direct`). Session events carry no offer,
    so the offer filter does not change them; whole days without a product filter come from
    the visitor-day read model."""
    if not _day_counters_answer(f):
        return traffic_direct(f)
    w = _Where()
    w.add("scope = %s", _scope(f))
    _day_range(w, f)
    return _rows(
        "SELECT count(*) AS sessions, count(DISTINCT visitor_id) AS visitors "
        f"FROM {{vday}} WHERE {w.sql}",
        w.params,
    )[0]


def _summary_filters(w: _Where, f: MetricFilter, *, time: str, offers: str | None) -> None:
    w.range(time, f)
    if f.source is not None:
        w.add("source = %s", f.source)
    if f.product_id:
        w.add("core_product_id = %s", f.product_id)
    if f.offer_id and offers:
        w.add(f"%s = ANY({offers})", f.offer_id)


def order_value(f: MetricFilter) -> list[dict[str, Any]]:
    """Per currency: orders paid in [start, end), gross and net (of refunds and chargebacks)
    ledger money on them, AOV, and revenue per session and per visitor."""
    seen = traffic(f)
    w = _Where()
    w.add("entries > 0")
    _summary_filters(w, f, time="paid_at", offers="offer_ids")
    return _rows(
        f"""
        SELECT {ORDER_VALUE_COLUMNS}
        FROM (SELECT currency, count(*) AS orders, %s::bigint AS sessions,
                     %s::bigint AS visitors, sum(charged)::bigint AS gross,
                     sum(refunded + charged_back)::bigint AS returned
              FROM {{osum}} WHERE {w.sql} GROUP BY currency) m
        ORDER BY currency
        """,
        [seen["sessions"], seen["visitors"]] + w.params,
    )


def order_value_by_day(f: MetricFilter) -> list[dict[str, Any]]:
    """Per UTC day paid and currency: orders, gross, net, AOV (see `order_value_by_day_direct`)."""
    w = _Where()
    w.add("entries > 0")
    _summary_filters(w, f, time="paid_at", offers="offer_ids")
    return _rows(
        f"""
        SELECT {ORDER_VALUE_DAY_COLUMNS}
        FROM (SELECT (paid_at AT TIME ZONE 'UTC')::date AS day, currency, count(*) AS orders,
                     sum(charged)::bigint AS gross,
                     sum(refunded + charged_back)::bigint AS returned
              FROM {{osum}} WHERE {w.sql} GROUP BY 1, 2) m
        ORDER BY day, currency
        """,
        w.params,
    )


def take_rates(f: MetricFilter, *, by: str = "offer") -> list[dict[str, Any]]:
    """Over orders paid in [start, end), per offer or source: offered, accepted, taken (a
    charged line of the offer), rate = taken ÷ offered (see `take_rates_direct`)."""
    key = {"offer": "x.offer_id", "source": f"coalesce(nullif(s.source, ''), '{DIRECT}')"}[by]
    w = _Where()
    _summary_filters(w, f, time="s.paid_at", offers=None)
    if f.offer_id:
        w.add("x.offer_id = %s", f.offer_id)
    return _rows(
        f"""
        SELECT {by}, {TAKE_RATE_COLUMNS}
        FROM (SELECT {key} AS {by}, count(*) AS offered,
                     count(*) FILTER (WHERE x.offer_id = ANY(s.accepted_ids)) AS accepted,
                     count(*) FILTER (WHERE x.offer_id = ANY(s.taken_ids)) AS taken
              FROM {{osum}} s CROSS JOIN LATERAL unnest(s.offered_ids) x(offer_id)
              WHERE {w.sql} GROUP BY 1) t
        ORDER BY {by}
        """,
        w.params,
    )


def refund_rates(f: MetricFilter, *, by: str = "offer") -> list[dict[str, Any]]:
    """Per line kind and offer, or per kind, over the lines of orders paid in [start, end)
    (definitions in `refund_rates_direct`), from the per-line summary."""
    group = ", ".join(REFUND_GROUPS[by])
    w = _Where()
    w.add("(charged > 0 OR refunded > 0 OR charged_back > 0)")
    _summary_filters(w, f, time="paid_at", offers=None)
    if f.offer_id:
        w.add("offer_id = %s", f.offer_id)
    return _rows(
        f"""
        SELECT {group}, {REFUND_COLUMNS}
        FROM {{lsum}} WHERE {w.sql} GROUP BY {group} ORDER BY {group}
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
