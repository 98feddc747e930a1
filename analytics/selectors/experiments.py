"""Per-arm figures of an experiment, from the assignment table and the source tables."""

from __future__ import annotations

from typing import Any

from analytics.models import Experiment
from analytics.selectors.common import _rows, ledger_matches_line, ledger_matches_order


def experiment_arm_stats(experiment: Experiment) -> list[dict[str, Any]]:
    """Per arm, counted from the experiment's start: visitors assigned, those who took the
    offer (a paid line of it, as take rates count takes: docs/metrics.md), those who bought
    (a paid order), gross and net revenue, buyers with a refund or chargeback, and buyers
    with two or more paid orders (repeat purchase)."""
    since = experiment.started_at or experiment.created_at
    return _rows(
        f"""
        WITH a AS (SELECT visitor_key, variant FROM {{assignment}} WHERE experiment_id = %s),
        took AS (
            SELECT DISTINCT o.visitor_id FROM {{order}} o JOIN a ON a.visitor_key = o.visitor_id
            JOIN {{line}} l ON l.order_id = o.id
            WHERE l.offer_id = %s AND l.created_at >= %s AND o.paid_at IS NOT NULL
              AND EXISTS (SELECT 1 FROM {{ledger}} le WHERE {ledger_matches_line("le", "l")}
                          AND le.kind = 'charge')
        ),
        orders AS (
            SELECT o.visitor_id, o.id FROM {{order}} o JOIN a ON a.visitor_key = o.visitor_id
            WHERE o.paid_at IS NOT NULL AND o.paid_at >= %s
        ),
        per_visitor AS (
            SELECT orders.visitor_id, count(DISTINCT orders.id) AS paid_orders,
                   coalesce(sum(le.amount) FILTER (WHERE le.kind = 'charge'), 0) AS gross,
                   coalesce(sum(CASE le.kind WHEN 'reinstated' THEN -le.amount ELSE le.amount END)
                FILTER (WHERE le.kind <> 'charge'), 0) AS returned
            FROM orders LEFT JOIN {{ledger}} le ON {ledger_matches_order("le", "orders.id")}
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
        [experiment.pk, experiment.offer_id, since, since],
    )
