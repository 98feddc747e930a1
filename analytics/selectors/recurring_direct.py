"""The oracles of the subscription figures (`analytics/selectors/recurring.py`): the same
definitions recomputed a second way, in Python over the plain rows of subscriptions and
their periods, walking each month and each subscription. The tests assert that the SQL
figures equal these and hand-computed numbers, so a wrong query and a wrong oracle both fail.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.utils import timezone

from analytics.selectors.common import MetricFilter, _rows
from analytics.selectors.recurring import GIVEN_UP, MRR_COUNTS, PER_YEAR, mrr_months
from core import orderkeys


def _share(part: int, whole: int) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def monthly_value(sub: dict[str, Any]) -> int:
    """A subscription's price less tax as a month's worth, to the minor unit (half up)."""
    per_year = PER_YEAR[sub["interval_unit"]]
    value = Decimal(sub["amount"] - sub["tax_amount"]) * per_year / (12 * sub["interval_count"])
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _subscriptions(f: MetricFilter, kind: str) -> list[dict[str, Any]]:
    subs = _rows("SELECT * FROM {sub} WHERE kind = %s ORDER BY id", [kind])
    return [s for s in subs if not f.product_id or s["product_id"] == f.product_id]


def _periods() -> dict[int, list[dict[str, Any]]]:
    by_sub: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for p in _rows("SELECT * FROM {period} ORDER BY subscription_id, number", []):
        by_sub[p["subscription_id"]].append(p)
    return by_sub


def _counted(p: dict[str, Any]) -> bool:
    return p["status"] != GIVEN_UP


def _in_mrr_before(sub: dict[str, Any], periods: list[dict[str, Any]], t: dt.datetime) -> bool:
    """Whether the subscription was in MRR in the moment before `t`."""
    if sub["ended_at"] is not None and sub["ended_at"] < t:
        return False
    return any(p["starts_at"] < t <= p["ends_at"] for p in periods if _counted(p))


def mrr_movements_direct(
    f: MetricFilter, *, as_of: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """`recurring.mrr_movements`, month by month and customer by customer."""
    as_of = as_of or timezone.now()
    subs = _subscriptions(f, "subscription")
    periods = _periods()
    starts = [p["starts_at"] for s in subs for p in periods[s["id"]]]
    first_at: dict[tuple[int, str], dt.datetime] = {}
    for s in subs:
        for p in periods[s["id"]]:
            if _counted(p) and (s["ended_at"] is None or s["ended_at"] > p["starts_at"]):
                key = (s["customer_id"], s["currency"])
                first_at[key] = min(first_at.get(key, p["starts_at"]), p["starts_at"])

    def snapshot(t: dt.datetime) -> dict[tuple[int, str], int]:
        out: dict[tuple[int, str], int] = defaultdict(int)
        for s in subs:
            if _in_mrr_before(s, periods[s["id"]], t):
                out[(s["customer_id"], s["currency"])] += monthly_value(s)
        return out

    rows = []
    for month, closing in mrr_months(f, as_of, min(starts) if starts else None):
        before, after = snapshot(month), snapshot(closing)
        per_currency: dict[str, dict[str, int]] = {}
        for key in sorted(set(before) | set(after)):
            m0, m1 = before.get(key, 0), after.get(key, 0)
            r = per_currency.setdefault(key[1], dict.fromkeys(MRR_COUNTS, 0))
            r["mrr_start"] += m0
            r["mrr_end"] += m1
            r["customers_start"] += m0 > 0
            r["customers_end"] += m1 > 0
            if m0 == 0 and first_at[key] >= month:
                r["new"] += m1
                r["new_customers"] += 1
            elif m0 == 0:
                r["reactivation"] += m1
                r["reactivated_customers"] += 1
            elif m1 == 0:
                r["churned"] += m0
                r["churned_customers"] += 1
            elif m1 > m0:
                r["expansion"] += m1 - m0
            else:
                r["contraction"] += m0 - m1
        for currency in sorted(per_currency):
            r = per_currency[currency]
            rows.append(
                {
                    "month": month.date(),
                    "currency": currency,
                    **r,
                    "logo_churn_rate": _share(r["churned_customers"], r["customers_start"]),
                    "revenue_churn_rate": _share(r["churned"] + r["contraction"], r["mrr_start"]),
                    "net_revenue_churn_rate": _share(
                        r["churned"] + r["contraction"] - r["expansion"] - r["reactivation"],
                        r["mrr_start"],
                    ),
                }
            )
    return rows


def _cohort(s: dict[str, Any], f: MetricFilter) -> dt.date | None:
    made = s["created_at"].astimezone(dt.UTC)
    if (f.start and made < f.start) or (f.end and made >= f.end):
        return None
    return dt.date(made.year, made.month, 1)


def trial_conversion_direct(f: MetricFilter) -> list[dict[str, Any]]:
    """`recurring.trial_conversion`, subscription by subscription."""
    periods = _periods()
    cohorts: dict[dt.date, dict[str, int]] = {}
    for s in _subscriptions(f, "subscription"):
        cohort = _cohort(s, f)
        if s["trial_ends_at"] is None or cohort is None:
            continue
        c = cohorts.setdefault(cohort, {"trials": 0, "converted": 0, "pending": 0, "lost": 0})
        c["trials"] += 1
        if any(p["number"] == 0 and p["status"] == "paid" for p in periods[s["id"]]):
            c["converted"] += 1
        elif s["status"] in ("canceled", "unpaid"):
            c["lost"] += 1
        else:
            c["pending"] += 1
    return [
        {
            "cohort": cohort,
            **c,
            "conversion_rate": _share(c["converted"], c["converted"] + c["lost"]),
        }
        for cohort, c in sorted(cohorts.items())
    ]


def plan_completion_direct(f: MetricFilter) -> list[dict[str, Any]]:
    """`recurring.plan_completion`, plan by plan."""
    periods = _periods()
    groups: dict[tuple[dt.date, str], dict[str, int]] = {}
    for s in _subscriptions(f, "instalments"):
        cohort = _cohort(s, f)
        if cohort is None:
            continue
        g = groups.setdefault(
            (cohort, s["currency"]),
            dict.fromkeys(
                (
                    "plans",
                    "completed",
                    "defaulted",
                    "cancelled",
                    "in_progress",
                    "scheduled",
                    "collected",
                ),
                0,
            ),
        )
        paid = [p for p in periods[s["id"]] if p["status"] == "paid"]
        g["plans"] += 1
        g["scheduled"] += s["instalments"] * s["amount"]
        g["collected"] += sum(p["amount"] for p in paid)
        if len(paid) >= s["instalments"]:
            g["completed"] += 1
        elif s["status"] == "unpaid" or s["end_reason"] == "dunning":
            g["defaulted"] += 1
        elif s["status"] == "canceled":
            g["cancelled"] += 1
        else:
            g["in_progress"] += 1
    rows = []
    for (cohort, currency), g in sorted(groups.items()):
        decided = g["completed"] + g["defaulted"] + g["cancelled"]
        rows.append(
            {
                "cohort": cohort,
                "currency": currency,
                **g,
                "completion_rate": _share(g["completed"], decided),
                "default_rate": _share(g["defaulted"], decided),
            }
        )
    return rows


def renewal_revenue_direct(f: MetricFilter) -> list[dict[str, Any]]:
    """`recurring.renewal_revenue`, ledger row by ledger row (references parsed in Python)."""
    products = {s["id"]: s["product_id"] for s in _rows("SELECT id, product_id FROM {sub}", [])}
    sums: dict[tuple[dt.date, str], dict[str, int]] = {}
    field = {"charge": "charged", "refund": "refunded", "chargeback": "charged_back"}
    for le in _rows("SELECT * FROM {ledger} ORDER BY id", []):
        sub_id = orderkeys.subscription_reference_parse(le["reference"])
        if sub_id is None or sub_id not in products:
            continue
        if f.product_id and products[sub_id] != f.product_id:
            continue
        made = le["created_at"].astimezone(dt.UTC)
        if (f.start and made < f.start) or (f.end and made >= f.end):
            continue
        row = sums.setdefault(
            (dt.date(made.year, made.month, 1), le["currency"]),
            {"charged": 0, "refunded": 0, "charged_back": 0},
        )
        if le["kind"] in field:
            row[field[le["kind"]]] += le["amount"]
    return [
        {
            "month": month,
            "currency": currency,
            **r,
            "net": r["charged"] - r["refunded"] - r["charged_back"],
        }
        for (month, currency), r in sorted(sums.items())
    ]
