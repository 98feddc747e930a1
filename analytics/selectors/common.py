"""What every metric selector shares: the filter, the table names, the SQL helpers, and the
definitions (funnel steps, session events, how an event maps to a step, how a ledger row
matches its line). docs/metrics.md is the glossary of what each figure means."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.apps import apps
from django.db import connection, connections

from analytics.models import EventName
from core import orderkeys, replica

# The shown-offer events: a bump on the checkout, an upsell or downsell after paying, a
# follow-up cross-sell email (EMAIL_SENT carries the offer it links to).
OFFERED = (
    EventName.BUMP_OFFERED,
    EventName.UPSELL_OFFERED,
    EventName.DOWNSELL_OFFERED,
    EventName.EMAIL_SENT,
)
# The buyer said yes: ticked the bump at checkout start, clicked accept on an upsell,
# downsell or follow-up offer (the writers log all three post-purchase accepts as
# UPSELL_ACCEPTED with properties.kind). Paid or not: a *take* is a paid line.
ACCEPTED = (EventName.BUMP_ACCEPTED, EventName.UPSELL_ACCEPTED)

# Post-purchase events are written as upsell_* with properties.kind = upsell, downsell or
# cross_sell; the step names them for what they are.
_KINDED = ("upsell_accepted", "upsell_declined", "upsell_failed", "upsell_charged")


def step_sql(alias: str = "e") -> str:
    """SQL: the funnel step of an event row (its name, with upsell_* renamed downsell_* or
    cross_sell_* for those kinds)."""
    a = f"{alias}." if alias else ""
    names = ", ".join(f"'{n}'" for n in _KINDED)
    return (
        f"(CASE WHEN {a}name IN ({names}) AND {a}properties->>'kind' IN ('downsell', "
        f"'cross_sell') THEN ({a}properties->>'kind') || substr({a}name, 7) ELSE {a}name END)"
    )


FUNNEL_STEPS = (
    "page_viewed",
    "checkout_initiated",
    "checkout_completed",
    "bump_offered",
    "bump_accepted",
    "upsell_offered",
    "upsell_accepted",
    "upsell_charged",
    "downsell_offered",
    "downsell_accepted",
    "downsell_charged",
)
SESSION_EVENTS = (EventName.PAGE_VIEWED, EventName.CHECKOUT_INITIATED)
LINE_KINDS = ("core", "bump", "upsell", "downsell", "cross_sell")
LTV_DAYS = (30, 60, 90)
# The filter value for traffic without a source (no utm_source), distinct from no filter.
DIRECT = "(direct)"


@dataclass(frozen=True)
class MetricFilter:
    """Half-open [start, end) in UTC for every metric. `source`: None = every source, "" =
    direct traffic only (the API's and dashboard's `source=(direct)`)."""

    start: dt.datetime | None = None  # inclusive
    end: dt.datetime | None = None  # exclusive
    offer_id: int | None = None
    product_id: int | None = None
    source: str | None = None


def source_param(raw: str | None) -> str | None:
    """A request's `source` value → MetricFilter.source: absent or empty = no filter,
    "(direct)" = no source."""
    if raw is None or raw == "":
        return None
    return "" if raw == DIRECT else raw


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
        "vday": _t("analytics.VisitorDay"),
        "osum": _t("analytics.OrderSummary"),
        "lsum": _t("analytics.OfferLineSummary"),
        "csum": _t("analytics.CustomerSummary"),
        "offer": _t("offers.Offer"),
        # Subscriptions (above analytics in the layers: read by name, like the others).
        "sub": _t("subscriptions.Subscription"),
        "period": _t("subscriptions.SubscriptionPeriod"),
    }


def _rows(sql: str, params: list[Any]) -> list[dict[str, Any]]:
    """Run a metric's SQL where reads go (the replica inside `core.replica.replica_reads()`
    when it is fresh, the primary otherwise)."""
    query = sql.format(**_tables())

    def read(alias: str) -> list[dict[str, Any]]:
        with connections[alias].cursor() as cursor:
            cursor.execute(query, params)
            names = [c.name for c in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    return replica.read_with_fallback(read)


def ledger_matches_line(ledger: str, line: str) -> str:
    """SQL: ledger row `ledger` is money for order line `line`. The one join of the ledger to
    lines, for every kind of line, from the key formats in core/orderkeys.py."""
    return (
        f"{ledger}.reference = {orderkeys.order_reference_sql(f'{line}.order_id')} AND "
        f"{ledger}.line_key = "
        + orderkeys.line_key_sql(
            kind=f"{line}.kind", line_id=f"{line}.id", order_id=f"{line}.order_id"
        )
    )


def ledger_matches_order(ledger: str, order_id: str) -> str:
    """SQL: ledger row `ledger` is money for the order whose id is `order_id`."""
    return f"{ledger}.reference = {orderkeys.order_reference_sql(order_id)}"


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
    if f.source is not None:
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
    if f.source is not None:
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


def rate(part: int, whole: int) -> Decimal | None:
    """A share as a Decimal to 4 places (half up), None when there is nothing to divide by."""
    if not whole:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


# Per-currency money columns over (orders, sessions, visitors, gross, returned), the same
# expressions for the oracle and the read model.
ORDER_VALUE_COLUMNS = """
    currency, orders, sessions, visitors, gross, gross - returned AS net,
    round(gross::numeric / nullif(orders, 0))::bigint AS aov,
    round((gross - returned)::numeric / nullif(orders, 0))::bigint AS net_aov,
    round(gross::numeric / nullif(sessions, 0))::bigint AS revenue_per_session,
    round((gross - returned)::numeric / nullif(sessions, 0))::bigint AS net_revenue_per_session,
    round(gross::numeric / nullif(visitors, 0))::bigint AS revenue_per_visitor,
    round((gross - returned)::numeric / nullif(visitors, 0))::bigint AS net_revenue_per_visitor
"""

# Per (day, currency) over (orders, gross, returned): the revenue-over-time series.
ORDER_VALUE_DAY_COLUMNS = """
    day, currency, orders, gross, gross - returned AS net,
    round(gross::numeric / nullif(orders, 0))::bigint AS aov,
    round((gross - returned)::numeric / nullif(orders, 0))::bigint AS net_aov
"""

TAKE_RATE_COLUMNS = """
    offered, accepted, taken, round(taken::numeric / nullif(offered, 0), 4) AS rate
"""

# Over per-line (charged, refunded, charged_back) rows.
REFUND_COLUMNS = """
    count(*) FILTER (WHERE charged > 0) AS sold,
    count(*) FILTER (WHERE charged > 0 AND refunded >= charged) AS refunded_lines,
    count(*) FILTER (WHERE refunded > 0 AND refunded < charged) AS partially_refunded_lines,
    count(*) FILTER (WHERE charged_back > 0) AS chargebacks,
    coalesce(sum(charged), 0)::bigint AS charged_amount,
    coalesce(sum(refunded), 0)::bigint AS refunded_amount,
    coalesce(sum(charged_back), 0)::bigint AS charged_back_amount,
    round((count(*) FILTER (WHERE charged > 0 AND refunded >= charged))::numeric
          / nullif(count(*) FILTER (WHERE charged > 0), 0), 4) AS refund_rate,
    round((count(*) FILTER (WHERE refunded > 0 AND refunded < charged))::numeric
          / nullif(count(*) FILTER (WHERE charged > 0), 0), 4) AS partial_refund_rate,
    round(coalesce(sum(refunded), 0)::numeric / nullif(sum(charged), 0), 4)
        AS refund_rate_amount,
    round((count(*) FILTER (WHERE charged_back > 0))::numeric
          / nullif(count(*) FILTER (WHERE charged > 0), 0), 4) AS chargeback_rate
"""
REFUND_GROUPS = {"offer": ("kind", "offer_id"), "kind": ("kind",)}
