"""Subscription analytics: MRR and its movements per month, logo and revenue churn, trial
conversion and payment-plan completion, each one SQL query over the subscriptions app's tables
(subscriptions, their stored periods), read by name like every other read model here:
analytics may not import `subscriptions` (it sits above analytics in the layers), so the table
names come from the app registry at call time. Definitions: docs/metrics.md, "Subscriptions";
the oracle each is tested against is `recurring_direct`, a separate recomputation in Python.

MRR counts subscriptions only (never payment plans: a plan's instalments end, so they are not
recurring revenue; `plan_completion` reports them), each at its price less tax, normalised to
a month: ×365/12 for days, ×52/12 for weeks, ÷12 for years, ÷ the interval count, rounded to
the minor unit (half up) per subscription so every sum below is exact.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from analytics.selectors.common import MetricFilter, _rows
from core import orderkeys

# The amounts and counts of a month's MRR row (the oracle adds them up from zero).
MRR_COUNTS = [
    "mrr_start",
    "new",
    "expansion",
    "reactivation",
    "contraction",
    "churned",
    "mrr_end",
    "customers_start",
    "new_customers",
    "reactivated_customers",
    "churned_customers",
    "customers_end",
]
MRR_COLUMNS = [
    "month",
    "currency",
    *MRR_COUNTS,
    "logo_churn_rate",
    "revenue_churn_rate",
    "net_revenue_churn_rate",
]
TRIAL_COLUMNS = ["cohort", "trials", "converted", "pending", "lost", "conversion_rate"]
PLAN_COLUMNS = [
    "cohort",
    "currency",
    "plans",
    "completed",
    "defaulted",
    "cancelled",
    "in_progress",
    "completion_rate",
    "default_rate",
    "scheduled",
    "collected",
]
RENEWAL_COLUMNS = ["month", "currency", "charged", "refunded", "charged_back", "net"]
# Intervals of each unit in a year: a price × this ÷ (12 × interval count) is its monthly value.
PER_YEAR = {"day": 365, "week": 52, "month": 12, "year": 1}
# The one billed period that is not MRR: dunning gave up on it. Paid periods count, and so do
# those still being collected (a past-due renewal is still revenue the creator expects).
GIVEN_UP = "abandoned"


def month_start(when: dt.datetime) -> dt.datetime:
    when = when.astimezone(dt.UTC)
    return dt.datetime(when.year, when.month, 1, tzinfo=dt.UTC)


def next_month(when: dt.datetime) -> dt.datetime:
    return dt.datetime(when.year + when.month // 12, when.month % 12 + 1, 1, tzinfo=dt.UTC)


def months_between(first: dt.datetime, last: dt.datetime) -> list[dt.datetime]:
    """Month starts from `first`'s month to `last`'s month, both included."""
    months, m = [], month_start(first)
    while m <= last:
        months.append(m)
        m = next_month(m)
    return months


def mrr_months(f: MetricFilter, as_of: dt.datetime, first_period: dt.datetime | None):
    """The months a report covers: from the filter's start (or the first billed period) to
    the month of `as_of` (or before the filter's end), each with the instant of its closing
    snapshot: the next month's start, or `as_of` for the month in progress."""
    if f.start is None and first_period is None:
        return []
    first = f.start or first_period
    last = min(as_of, f.end - dt.timedelta(microseconds=1)) if f.end else as_of
    return [(m, min(next_month(m), as_of)) for m in months_between(first, last)]


def _product(alias: str, f: MetricFilter) -> tuple[str, list[Any]]:
    return (f"AND {alias}.product_id = %s", [f.product_id]) if f.product_id else ("", [])


def mrr_movements(f: MetricFilter, *, as_of: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Per month and currency: MRR at the start (the moment before the month begins) and at
    the end (the moment before the next begins, or `as_of` for this month), and the movements
    between them per customer: new (no MRR before, never had any), reactivation (no MRR at
    the start, had some before), expansion and contraction (more or less, both non-zero),
    churned (some at the start, none at the end). mrr_start + new + expansion + reactivation
    − contraction − churned = mrr_end. Churn rates: logo = customers churned ÷ customers at
    the start; revenue = (churned + contraction) ÷ mrr_start; net revenue = (churned +
    contraction − expansion − reactivation) ÷ mrr_start.

    A subscription is in MRR at a moment when a billed period that dunning has not given up
    on covers it (a past-due renewal still counts) and it has not ended; a trial is not MRR.
    """
    as_of = as_of or timezone.now()
    product, pparams = _product("s", f)
    first = _rows(
        f"SELECT min(p.starts_at) AS first FROM {{period}} p JOIN {{sub}} s "
        f"ON s.id = p.subscription_id WHERE s.kind = 'subscription' {product}",
        pparams,
    )[0]["first"]
    months = mrr_months(f, as_of, first)
    if not months:
        return []
    factor = " ".join(f"WHEN '{u}' THEN {n}" for u, n in PER_YEAR.items())
    return _rows(
        f"""
        WITH b AS (SELECT * FROM unnest(%s::timestamptz[], %s::timestamptz[]) AS b(month, t1)),
        instants AS (SELECT month AS t FROM b UNION SELECT t1 FROM b),
        subs AS (
            SELECT s.id, s.customer_id, s.currency, s.ended_at,
                   round((s.amount - s.tax_amount)::numeric
                         * (CASE s.interval_unit {factor} END) / (12 * s.interval_count))::bigint
                       AS mrr
            FROM {{sub}} s WHERE s.kind = 'subscription' {product}
        ),
        -- The periods in effect just before each instant: (starts, ends]. Materialized: each
        -- period meets the few instants once, before the join to its subscription.
        covered AS MATERIALIZED (
            SELECT i.t, p.subscription_id
            FROM {{period}} p JOIN instants i ON p.starts_at < i.t AND i.t <= p.ends_at
            WHERE p.status <> %s
        ),
        snap AS (
            SELECT c.t, s.customer_id, s.currency, sum(s.mrr)::bigint AS mrr
            FROM covered c
            JOIN subs s ON s.id = c.subscription_id AND (s.ended_at IS NULL OR s.ended_at >= c.t)
            GROUP BY 1, 2, 3
        ),
        firsts AS (
            SELECT s.customer_id, s.currency, min(p.starts_at) AS first_at
            FROM subs s JOIN {{period}} p ON p.subscription_id = s.id AND p.status <> %s
            WHERE s.ended_at IS NULL OR s.ended_at > p.starts_at
            GROUP BY 1, 2
        ),
        pairs AS (
            SELECT month, customer_id, currency, sum(m0) AS m0, sum(m1) AS m1 FROM (
                SELECT b.month, n.customer_id, n.currency, n.mrr AS m0, 0 AS m1
                FROM b JOIN snap n ON n.t = b.month
                UNION ALL
                SELECT b.month, n.customer_id, n.currency, 0, n.mrr
                FROM b JOIN snap n ON n.t = b.t1
            ) x GROUP BY 1, 2, 3
        ),
        moves AS (
            SELECT p.month, p.currency, p.m0, p.m1,
                   p.m0 = 0 AND f.first_at >= p.month AS is_new,
                   p.m0 = 0 AND f.first_at < p.month AS is_back,
                   p.m0 > 0 AND p.m1 = 0 AS is_gone
            FROM pairs p JOIN firsts f USING (customer_id, currency)
        ),
        sums AS (
            SELECT month, currency,
                   sum(m0)::bigint AS mrr_start,
                   coalesce(sum(m1) FILTER (WHERE is_new), 0)::bigint AS new,
                   coalesce(sum(m1 - m0) FILTER (WHERE m0 > 0 AND m1 > m0), 0)::bigint
                       AS expansion,
                   coalesce(sum(m1) FILTER (WHERE is_back), 0)::bigint AS reactivation,
                   coalesce(sum(m0 - m1) FILTER (WHERE m1 > 0 AND m1 < m0), 0)::bigint
                       AS contraction,
                   coalesce(sum(m0) FILTER (WHERE is_gone), 0)::bigint AS churned,
                   sum(m1)::bigint AS mrr_end,
                   count(*) FILTER (WHERE m0 > 0) AS customers_start,
                   count(*) FILTER (WHERE is_new) AS new_customers,
                   count(*) FILTER (WHERE is_back) AS reactivated_customers,
                   count(*) FILTER (WHERE is_gone) AS churned_customers,
                   count(*) FILTER (WHERE m1 > 0) AS customers_end
            FROM moves GROUP BY month, currency
        )
        SELECT (month AT TIME ZONE 'UTC')::date AS month, currency, mrr_start, new, expansion,
               reactivation, contraction, churned, mrr_end, customers_start, new_customers,
               reactivated_customers, churned_customers, customers_end,
               round(churned_customers::numeric / nullif(customers_start, 0), 4)
                   AS logo_churn_rate,
               round((churned + contraction)::numeric / nullif(mrr_start, 0), 4)
                   AS revenue_churn_rate,
               round((churned + contraction - expansion - reactivation)::numeric
                     / nullif(mrr_start, 0), 4) AS net_revenue_churn_rate
        FROM sums ORDER BY month, currency
        """,
        [[m for m, _ in months], [t for _, t in months], *pparams, GIVEN_UP, GIVEN_UP],
    )


def _cohort_where(f: MetricFilter, kind: str) -> tuple[str, list[Any]]:
    parts, params = ["s.kind = %s"], [kind]
    if f.start:
        parts.append("s.created_at >= %s")
        params.append(f.start)
    if f.end:
        parts.append("s.created_at < %s")
        params.append(f.end)
    if f.product_id:
        parts.append("s.product_id = %s")
        params.append(f.product_id)
    return " AND ".join(parts), params


def trial_conversion(f: MetricFilter) -> list[dict[str, Any]]:
    """Per month the trial started (the subscription was made) in [start, end): trials,
    converted (the first period after the trial was paid), pending (not converted and still
    in trial, being collected or paused), lost (cancelled or unpaid without a paid first
    period); conversion rate = converted ÷ (converted + lost)."""
    where, params = _cohort_where(f, "subscription")
    return _rows(
        f"""
        WITH t AS (
            SELECT date_trunc('month', s.created_at AT TIME ZONE 'UTC')::date AS cohort,
                   EXISTS (SELECT 1 FROM {{period}} p WHERE p.subscription_id = s.id
                           AND p.number = 0 AND p.status = 'paid') AS converted,
                   s.status IN ('canceled', 'unpaid') AS ended
            FROM {{sub}} s WHERE {where} AND s.trial_ends_at IS NOT NULL
        )
        SELECT cohort, count(*) AS trials,
               count(*) FILTER (WHERE converted) AS converted,
               count(*) FILTER (WHERE NOT converted AND NOT ended) AS pending,
               count(*) FILTER (WHERE NOT converted AND ended) AS lost,
               round((count(*) FILTER (WHERE converted))::numeric
                     / nullif(count(*) FILTER (WHERE converted OR ended), 0), 4)
                   AS conversion_rate
        FROM t GROUP BY cohort ORDER BY cohort
        """,
        params,
    )


def plan_completion(f: MetricFilter) -> list[dict[str, Any]]:
    """Payment plans per month started (in [start, end)) and currency: started; completed
    (every instalment paid); defaulted (dunning gave up: cancelled or unpaid for it);
    cancelled (ended otherwise before the last instalment: by the buyer or creator, a refund,
    a chargeback); in progress. Completion and default rates over the decided plans
    (completed + defaulted + cancelled). Scheduled = instalments × amount; collected = the
    paid instalments (before any refund)."""
    where, params = _cohort_where(f, "instalments")
    return _rows(
        f"""
        WITH t AS (
            SELECT date_trunc('month', s.created_at AT TIME ZONE 'UTC')::date AS cohort,
                   s.currency, s.status, s.end_reason, s.instalments * s.amount AS scheduled,
                   coalesce(pd.paid, 0) >= s.instalments AS done, coalesce(pd.amount, 0) AS got
            FROM {{sub}} s LEFT JOIN LATERAL (
                SELECT count(*) AS paid, sum(p.amount) AS amount FROM {{period}} p
                WHERE p.subscription_id = s.id AND p.status = 'paid'
            ) pd ON TRUE
            WHERE {where}
        ),
        c AS (
            SELECT cohort, currency, scheduled, got, done,
                   NOT done AND (status = 'unpaid' OR end_reason = 'dunning') AS defaulted,
                   NOT done AND status = 'canceled' AND end_reason <> 'dunning' AS cancelled
            FROM t
        )
        SELECT cohort, currency, count(*) AS plans,
               count(*) FILTER (WHERE done) AS completed,
               count(*) FILTER (WHERE defaulted) AS defaulted,
               count(*) FILTER (WHERE cancelled) AS cancelled,
               count(*) FILTER (WHERE NOT (done OR defaulted OR cancelled)) AS in_progress,
               round((count(*) FILTER (WHERE done))::numeric
                     / nullif(count(*) FILTER (WHERE done OR defaulted OR cancelled), 0), 4)
                   AS completion_rate,
               round((count(*) FILTER (WHERE defaulted))::numeric
                     / nullif(count(*) FILTER (WHERE done OR defaulted OR cancelled), 0), 4)
                   AS default_rate,
               sum(scheduled)::bigint AS scheduled, sum(got)::bigint AS collected
        FROM c GROUP BY cohort, currency ORDER BY cohort, currency
        """,
        params,
    )


def renewal_revenue(f: MetricFilter) -> list[dict[str, Any]]:
    """Per month (of the ledger entry, in [start, end)) and currency: what our own billing
    collected, i.e. the ledger's rows referenced "sub:<id>" (renewals, instalments after the
    first, a trial's first period): charged, refunded, charged back, and net = charged −
    refunded − charged back. A first payment made at checkout is the order's revenue, not here.
    """
    w, params = ["TRUE"], []
    if f.start:
        w.append("le.created_at >= %s")
        params.append(f.start)
    if f.end:
        w.append("le.created_at < %s")
        params.append(f.end)
    if f.product_id:
        w.append("s.product_id = %s")
        params.append(f.product_id)
    return _rows(
        f"""
        SELECT month, currency, charged, refunded, charged_back,
               charged - refunded - charged_back AS net
        FROM (
            SELECT date_trunc('month', le.created_at AT TIME ZONE 'UTC')::date AS month,
                   le.currency,
                   coalesce(sum(le.amount) FILTER (WHERE le.kind = 'charge'), 0)::bigint
                       AS charged,
                   coalesce(sum(le.amount) FILTER (WHERE le.kind = 'refund'), 0)::bigint
                       AS refunded,
                   coalesce(sum(le.amount) FILTER (WHERE le.kind = 'chargeback'), 0)::bigint
                       AS charged_back
            FROM {{ledger}} le
            JOIN {{sub}} s ON le.reference = {orderkeys.subscription_reference_sql("s.id")}
            WHERE {" AND ".join(w)}
            GROUP BY 1, 2
        ) m
        ORDER BY month, currency
        """,
        params,
    )
