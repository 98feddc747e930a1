"""What the dashboard shows a creator, built from the metric selectors: money in the store's
currency, the funnel with step conversion rates, revenue over time, the offer leaderboard and
experiments in plain words. Presentation only: every number comes from a selector unchanged
(the tests compare each with its `*_direct` oracle)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from analytics import selectors
from analytics.experiments import ExperimentReport, experiment_report
from analytics.models import Experiment, ExperimentStatus
from analytics.rollups import rollups_refresh
from analytics.selectors import MetricFilter
from analytics.stats import SequentialResult
from core.money import Money

# Each funnel step's conversion is counted against the step a visitor must have reached
# before it (a bump is shown on the checkout, an upsell after a completed checkout).
STEP_BASE = {
    "checkout_initiated": "page_viewed",
    "checkout_completed": "checkout_initiated",
    "bump_offered": "checkout_initiated",
    "bump_accepted": "bump_offered",
    "upsell_offered": "checkout_completed",
    "upsell_accepted": "upsell_offered",
    "upsell_charged": "upsell_accepted",
    "downsell_offered": "upsell_offered",
    "downsell_accepted": "downsell_offered",
    "downsell_charged": "downsell_accepted",
}
STEP_NAMES = {
    "page_viewed": "Viewed a product page",
    "checkout_initiated": "Started checkout",
    "checkout_completed": "Paid",
    "bump_offered": "Saw the order bump",
    "bump_accepted": "Ticked the bump",
    "upsell_offered": "Saw the upsell",
    "upsell_accepted": "Accepted the upsell",
    "upsell_charged": "Upsell charged",
    "downsell_offered": "Saw the downsell",
    "downsell_accepted": "Accepted the downsell",
    "downsell_charged": "Downsell charged",
}
LIFT_DAYS = 30  # the net-LTV window the leaderboard compares (the first to mature)


def money(amount: int | None, currency: str) -> str:
    return "–" if amount is None else Money(int(amount), currency).format()


def percent(value: Decimal | None) -> str:
    if value is None:
        return "–"
    return f"{(Decimal(value) * 100).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}%"


def funnel_rows(funnel: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The funnel's steps with the share of the base step's visitors who reached each."""
    visitors = {r["step"]: r["visitors"] for r in funnel}
    rows = []
    for r in funnel:
        base = STEP_BASE.get(r["step"])
        share = selectors.rate(r["visitors"], visitors.get(base, 0)) if base else None
        rows.append(
            {
                **r,
                "name": STEP_NAMES.get(r["step"], r["step"]),
                "base_name": STEP_NAMES.get(base, "") if base else "",
                "conversion": share,
                "conversion_text": (
                    f"{percent(share)} of “{STEP_NAMES[base].lower()}”"
                    if base and share is not None
                    else ""
                ),
            }
        )
    return rows


def revenue_days(f: MetricFilter, *, days: int = 30) -> tuple[str, list[dict[str, Any]]]:
    """The per-day series over the filter's range, in the currency with the most revenue, with
    every day present (0 when nothing was paid). Without a start: the `days` days up to the
    filter's end, or up to the last day with a paid order."""
    rows = selectors.order_value_by_day(f)
    totals: dict[str, int] = defaultdict(int)
    for r in rows:
        totals[r["currency"]] += r["gross"]
    if not totals:
        return "", []
    currency = max(sorted(totals), key=lambda c: totals[c])
    found = {r["day"]: r for r in rows if r["currency"] == currency}
    last = (f.end.date() - dt.timedelta(days=1)) if f.end else max(found)
    first = f.start.date() if f.start else last - dt.timedelta(days=days - 1)
    series = []
    day = first
    while day <= last:
        r = found.get(day, {"orders": 0, "gross": 0, "net": 0, "aov": None})
        series.append({"day": day, **{k: r[k] for k in ("orders", "gross", "net", "aov")}})
        day += dt.timedelta(days=1)
    return currency, series


def net_ltv_lift(cohorts: list[dict[str, Any]]) -> int | None:
    """Buyer-weighted average net LTV at LIFT_DAYS of takers less that of non-takers, over
    the cohorts whose window has passed; None until both groups have matured buyers."""
    sums = {True: [0, 0], False: [0, 0]}
    for r in cohorts:
        matured, ltv = r[f"matured{LIFT_DAYS}"], r[f"ltv{LIFT_DAYS}"]
        if matured and ltv is not None:
            sums[r["taker"]][0] += ltv * matured
            sums[r["taker"]][1] += matured
    if not sums[True][1] or not sums[False][1]:
        return None
    takers = Decimal(sums[True][0]) / sums[True][1]
    others = Decimal(sums[False][0]) / sums[False][1]
    return int((takers - others).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _offer_row(
    offer: dict[str, Any], f: MetricFilter, takes: dict[int, Any], money_rows: dict[int, Any]
) -> dict[str, Any]:
    oid = offer["offer"]
    t = takes.get(oid, {})
    m = money_rows.get(oid, {})
    lift = net_ltv_lift(
        selectors.cohort_ltv(
            MetricFilter(
                start=f.start, end=f.end, offer_id=oid, product_id=f.product_id, source=f.source
            )
        )
    )
    charged = m.get("charged_amount", 0)
    returned = m.get("refunded_amount", 0) + m.get("charged_back_amount", 0)
    return {
        **offer,
        "offered": t.get("offered", 0),
        "taken": t.get("taken", 0),
        "take_rate": t.get("rate"),
        "revenue": charged,
        "returned": returned,
        "net_revenue": charged - returned,
        "refund_rate": m.get("refund_rate"),
        "net_ltv_lift": lift,
    }


def _offer_money(f: MetricFilter) -> dict[int, dict[str, Any]]:
    # One row per (kind, offer) and an offer has one kind: one row per offer.
    return {r["offer_id"]: r for r in selectors.refund_rates(f, by="offer") if r["offer_id"]}


def offer_leaderboard(f: MetricFilter) -> list[dict[str, Any]]:
    """One row per offer: state, take rate, revenue, refunds, net revenue, refund rate and net
    LTV lift, best net revenue first. Offers never shown in the range are listed last."""
    takes = {r["offer"]: r for r in selectors.take_rates(f, by="offer")}
    money_rows = _offer_money(f)
    rows = [_offer_row(offer, f, takes, money_rows) for offer in selectors.offer_states()]
    rows.sort(key=lambda r: (r["offered"] == 0, -r["net_revenue"], r["offer"]))
    return rows


def offer_summary(offer_id: int, currency: str) -> str:
    """One offer's row of the leaderboard, all time, in a sentence (the offer's admin page).
    Folds what was written since the last refresh first, as the dashboard does."""
    rollups_refresh()
    f = MetricFilter(offer_id=offer_id)
    states = [o for o in selectors.offer_states() if o["offer"] == offer_id]
    if not states:
        return "–"
    takes = {r["offer"]: r for r in selectors.take_rates(f, by="offer")}
    r = _offer_row(states[0], f, takes, _offer_money(f))
    if not r["offered"]:
        return "Not shown to a paying buyer yet."
    lift = (
        "net LTV lift: not enough data yet"
        if r["net_ltv_lift"] is None
        else f"net LTV lift {money(r['net_ltv_lift'], currency)}"
    )
    return (
        f"Shown on {r['offered']} paid order{'s' if r['offered'] != 1 else ''}, taken on "
        f"{r['taken']} ({percent(r['take_rate'])}); revenue {money(r['revenue'], currency)}, "
        f"refunded or disputed {money(r['returned'], currency)}, net "
        f"{money(r['net_revenue'], currency)}; refund rate {percent(r['refund_rate'])}; {lift}."
    )


def _points(value: float) -> str:
    return f"{abs(value) * 100:.0f}"


def plain_words(report: ExperimentReport) -> str:
    """The experiment's standing as a sentence a creator reads at a glance."""
    r: SequentialResult = report.result
    a, b = report.arm_a, report.arm_b
    smallest = min(r.n_a, r.n_b)
    if smallest == 0:
        return f"Not enough data yet: no visitors in “{a if r.n_a == 0 else b}” so far."
    if r.decided:
        if r.difference > 0:
            return (
                f"“{b}” is ahead by {_points(r.lower)}–{_points(r.upper)} points on "
                f"{report.metric} ({percent(Decimal(str(round(r.rate_b, 4))))} vs "
                f"{percent(Decimal(str(round(r.rate_a, 4))))})."
            )
        return (
            f"“{a}” is ahead by {_points(r.upper)}–{_points(r.lower)} points on "
            f"{report.metric} ({percent(Decimal(str(round(r.rate_a, 4))))} vs "
            f"{percent(Decimal(str(round(r.rate_b, 4))))})."
        )
    between = (
        f"the difference ({b} − {a}) is somewhere between {r.lower * 100:+.0f} and "
        f"{r.upper * 100:+.0f} points"
    )
    if smallest < report.planned_per_arm:
        return (
            f"Not enough data yet: {smallest:,} of {report.planned_per_arm:,} planned visitors "
            f"per arm; so far {between}."
        )
    return f"No clear winner: the planned sample is reached and {between}."


def experiment_cards() -> list[dict[str, Any]]:
    cards = []
    for experiment in Experiment.objects.exclude(status=ExperimentStatus.DRAFT).order_by("-pk")[
        :20
    ]:
        report = experiment_report(experiment)
        r = report.result
        planned = report.planned_per_arm
        cards.append(
            {
                "name": experiment.name,
                "kind": experiment.get_kind_display(),
                "status": experiment.get_status_display(),
                "metric": report.metric,
                "summary": plain_words(report),
                "progress": min(100, round(100 * min(r.n_a, r.n_b) / planned)) if planned else 0,
                "smallest_arm": min(r.n_a, r.n_b),
                "planned_per_arm": planned,
                "difference": r.difference,
                "lower": r.lower,
                "upper": r.upper,
                "arms": report.arms,
                "notes": report.notes,
            }
        )
    return cards
