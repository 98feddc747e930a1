"""The dashboard's "Subscriptions" panel: MRR and its movements per month, churn, trial
conversion and payment-plan completion, formatted for the creator (money in its currency,
rates as percentages) with an accessible SVG chart. Presentation only: every number is the
selector's (`analytics/selectors/recurring.py`), unchanged."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from analytics import charts, insights
from analytics.selectors import MetricFilter, recurring

MONEY = ("mrr_start", "new", "expansion", "reactivation", "contraction", "churned", "mrr_end")
RATES = ("logo_churn_rate", "revenue_churn_rate", "net_revenue_churn_rate")


def views(f: MetricFilter) -> dict[str, tuple[list[str], Any]]:
    """The panel's figures as the dashboard's (columns, loader) pairs: each is a CSV export."""
    return {
        "mrr": (recurring.MRR_COLUMNS, lambda: recurring.mrr_movements(f)),
        "trials": (recurring.TRIAL_COLUMNS, lambda: recurring.trial_conversion(f)),
        "payment_plans": (recurring.PLAN_COLUMNS, lambda: recurring.plan_completion(f)),
        "renewal_revenue": (recurring.RENEWAL_COLUMNS, lambda: recurring.renewal_revenue(f)),
    }


def panel(data: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The template's context for the panel, from the rows the loaders above returned."""
    mrr = [
        {
            **r,
            **{f"{k}_text": insights.money(r[k], r["currency"]) for k in MONEY},
            **{f"{k}_text": insights.percent(r[k]) for k in RATES},
        }
        for r in data["mrr"]
    ]
    totals: dict[str, int] = defaultdict(int)
    for r in mrr:
        totals[r["currency"]] += r["mrr_end"] + r["mrr_start"]
    currency = max(sorted(totals), key=lambda c: totals[c]) if totals else ""
    series = [r for r in mrr if r["currency"] == currency]
    last_month = max((r["month"] for r in mrr), default=None)
    latest = {r["currency"]: r for r in mrr if r["month"] == last_month}
    return {
        "mrr": mrr,
        "mrr_now": [
            {
                "currency": c,
                "text": insights.money(r["mrr_end"], c),
                "customers": r["customers_end"],
                "month": r["month"],
            }
            for c, r in sorted(latest.items())
        ],
        "mrr_chart": charts.line_chart(
            title=f"MRR at the end of each month, and what moved it ({currency})",
            x_labels=[f"{r['month']:%b %Y}" for r in series],
            series=[
                ("MRR", [r["mrr_end"] for r in series]),
                ("new + reactivated", [r["new"] + r["reactivation"] for r in series]),
                ("expansion", [r["expansion"] for r in series]),
                ("churned + contraction", [r["churned"] + r["contraction"] for r in series]),
            ],
            y_format=lambda v: insights.money(round(v), currency),
        )
        if series
        else "",
        "trials": [
            {**r, "conversion_rate_text": insights.percent(r["conversion_rate"])}
            for r in data["trials"]
        ],
        "payment_plans": [
            {
                **r,
                "completion_rate_text": insights.percent(r["completion_rate"]),
                "default_rate_text": insights.percent(r["default_rate"]),
                "scheduled_text": insights.money(r["scheduled"], r["currency"]),
                "collected_text": insights.money(r["collected"], r["currency"]),
            }
            for r in data["payment_plans"]
        ],
        "renewal_revenue": [
            {
                **r,
                **{
                    f"{k}_text": insights.money(r[k], r["currency"])
                    for k in ("charged", "refunded", "charged_back", "net")
                },
            }
            for r in data["renewal_revenue"]
        ],
    }
