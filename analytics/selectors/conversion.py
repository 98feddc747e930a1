"""Coupons and abandoned-checkout reminders on the dashboard: what each coupon brought in
(net of its discount, which the ledger never charged) and how often it was taken, and what
the reminders recovered. Read from the source tables, like the other `*_direct` queries."""

from __future__ import annotations

from typing import Any

from analytics.selectors.common import MetricFilter, _rows, _t, _Where, ledger_matches_order

COUPON_COLUMNS = [
    "code",
    "currency",
    "checkouts",
    "orders",
    "take_rate",
    "discount",
    "gross",
    "net",
]

RECOVERY_COLUMNS = [
    "currency",
    "reminded_checkouts",
    "reminders_sent",
    "recovered_orders",
    "recovery_rate",
    "gross",
    "net",
]


def coupon_performance(f: MetricFilter) -> list[dict[str, Any]]:
    """Per coupon code and currency, over checkouts started with it in [start, end): how many,
    how many of them were paid (take rate = paid ÷ started), the discount on the paid ones
    (minor units, as the store's prices are set), and the money the ledger holds for them:
    gross (charged: already net of the discount) and net (less refunds and chargebacks)."""
    w = _Where()
    w.add("o.coupon_code <> ''")
    w.range("o.created_at", f)
    if f.source is not None:
        w.add("o.utm_source = %s", f.source)
    return _rows(
        f"""
        WITH started AS (
            SELECT o.id, o.coupon_code AS code, o.currency, o.paid_at IS NOT NULL AS paid
            FROM {{order}} o WHERE {w.sql}
        ),
        discount AS (
            SELECT s.id, sum(l.discount_amount) AS amount
            FROM started s JOIN {{line}} l ON l.order_id = s.id
            WHERE s.paid GROUP BY s.id
        ),
        money AS (
            SELECT s.id,
                   coalesce(sum(le.amount) FILTER (WHERE le.kind = 'charge'), 0) AS gross,
                   coalesce(sum(CASE le.kind WHEN 'reinstated' THEN -le.amount ELSE le.amount END)
                FILTER (WHERE le.kind <> 'charge'), 0) AS returned
            FROM started s JOIN {{ledger}} le ON {ledger_matches_order("le", "s.id")}
            WHERE s.paid GROUP BY s.id
        )
        SELECT s.code, s.currency, count(*) AS checkouts,
               count(*) FILTER (WHERE s.paid) AS orders,
               round((count(*) FILTER (WHERE s.paid))::numeric / count(*), 4) AS take_rate,
               coalesce(sum(d.amount), 0)::bigint AS discount,
               coalesce(sum(m.gross), 0)::bigint AS gross,
               coalesce(sum(m.gross - m.returned), 0)::bigint AS net
        FROM started s
        LEFT JOIN discount d ON d.id = s.id
        LEFT JOIN money m ON m.id = s.id
        GROUP BY s.code, s.currency
        ORDER BY s.code, s.currency
        """,
        w.params,
    )


def recovery_performance(f: MetricFilter) -> list[dict[str, Any]]:
    """Per currency: abandoned checkouts that got at least one reminder sent in [start, end),
    the reminders sent, and the orders paid in [start, end) that came back through one
    (`Order.recovered_from`), with their ledger money (gross, and net of refunds and
    chargebacks); recovery rate = recovered ÷ reminded."""
    sent = _Where()
    sent.add("fs.sequence = 'recovery' AND fs.status = 'sent'")
    sent.range("fs.sent_at", f)
    back = _Where()
    back.add("o.recovered_from_id IS NOT NULL AND o.paid_at IS NOT NULL")
    back.range("o.paid_at", f)
    followups = _t("storefront.FollowUpSend")
    return _rows(
        f"""
        WITH reminded AS (
            SELECT ao.currency, count(DISTINCT fs.order_id) AS checkouts,
                   count(*) AS sent
            FROM {followups} fs JOIN {{order}} ao ON ao.id = fs.order_id
            WHERE {sent.sql} GROUP BY ao.currency
        ),
        recovered AS (
            SELECT o.currency, count(DISTINCT o.id) AS orders,
                   coalesce(sum(le.amount) FILTER (WHERE le.kind = 'charge'), 0) AS gross,
                   coalesce(sum(CASE le.kind WHEN 'reinstated' THEN -le.amount ELSE le.amount END)
                FILTER (WHERE le.kind <> 'charge'), 0) AS returned
            FROM {{order}} o LEFT JOIN {{ledger}} le ON {ledger_matches_order("le", "o.id")}
            WHERE {back.sql} GROUP BY o.currency
        )
        SELECT coalesce(r.currency, b.currency) AS currency,
               coalesce(r.checkouts, 0) AS reminded_checkouts,
               coalesce(r.sent, 0) AS reminders_sent,
               coalesce(b.orders, 0) AS recovered_orders,
               round(coalesce(b.orders, 0)::numeric / nullif(r.checkouts, 0), 4)
                   AS recovery_rate,
               coalesce(b.gross, 0)::bigint AS gross,
               coalesce(b.gross - b.returned, 0)::bigint AS net
        FROM reminded r FULL OUTER JOIN recovered b ON b.currency = r.currency
        ORDER BY 1
        """,
        sent.params + back.params,
    )
