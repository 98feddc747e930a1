"""The creator's analytics dashboard (staff only) and its CSV exports."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.utils import timezone

from analytics import charts, insights, recurring_panel, selectors
from analytics.experiments import experiment_report
from analytics.models import Experiment, ExperimentStatus
from analytics.rollups import rollups_refresh
from analytics.selectors import DIRECT, LTV_DAYS, MetricFilter, conversion, source_param
from core.replica import replica_reads_call

GLOSSARY = Path(settings.BASE_DIR) / "docs" / "metrics.md"


def _parse_filter(params) -> MetricFilter:
    """One date convention with the API (docs/metrics.md): [start, end) in UTC. The day
    fields are UTC midnights: start is included, end is not (start=2026-06-01&end=2026-06-02
    is the one day of June 1)."""

    def day(name: str) -> dt.datetime | None:
        raw = params.get(name, "").strip()
        if not raw:
            return None
        return dt.datetime.combine(dt.date.fromisoformat(raw), dt.time(), tzinfo=dt.UTC)

    def number(name: str) -> int | None:
        raw = params.get(name, "").strip()
        return int(raw) if raw else None

    return MetricFilter(
        start=day("start"),
        end=day("end"),
        offer_id=number("offer"),
        product_id=number("product"),
        source=source_param(params.get("source", "").strip()[:100]),
    )


def _experiment_rows() -> list[dict[str, Any]]:
    rows = []
    for experiment in Experiment.objects.exclude(status=ExperimentStatus.DRAFT).order_by("-pk")[
        :20
    ]:
        report = experiment_report(experiment)
        r = report.result
        for arm in report.arms:
            rows.append(
                {
                    "experiment": experiment.name,
                    "kind": experiment.kind,
                    "arm": arm["arm"],
                    "visitors": arm["visitors"],
                    "takers": arm["takers"],
                    "buyers": arm["buyers"],
                    "take_rate": arm["take_rate"],
                    "conversion": arm["conversion"],
                    "revenue_per_visitor": arm["revenue_per_visitor"],
                    "refund_rate": arm["refund_rate"],
                    "repeat_rate": arm["repeat_rate"],
                    "planned_per_arm": report.planned_per_arm,
                    "metric": report.metric,
                    "difference": round(r.difference, 4),
                    "ci_lower": round(r.lower, 4),
                    "ci_upper": round(r.upper, 4),
                    "verdict": report.verdict,
                }
            )
    return rows


REFUND_FIGURES = [
    "sold",
    "refunded_lines",
    "partially_refunded_lines",
    "chargebacks",
    "charged_amount",
    "refunded_amount",
    "charged_back_amount",
    "refund_rate",
    "partial_refund_rate",
    "refund_rate_amount",
    "chargeback_rate",
]


# Each view: (columns, rows loader). The CSV export writes exactly these columns.
def _views(f: MetricFilter) -> dict[str, tuple[list[str], Any]]:
    return {
        "funnel": (["step", "events", "visitors"], lambda: selectors.funnel(f)),
        "traffic": (["sessions", "visitors"], lambda: [selectors.traffic(f)]),
        "order_value": (
            [
                "currency",
                "orders",
                "sessions",
                "visitors",
                "gross",
                "net",
                "aov",
                "net_aov",
                "revenue_per_session",
                "net_revenue_per_session",
                "revenue_per_visitor",
                "net_revenue_per_visitor",
            ],
            lambda: selectors.order_value(f),
        ),
        "take_rates_offer": (
            ["offer", "offered", "accepted", "taken", "rate"],
            lambda: selectors.take_rates(f, by="offer"),
        ),
        "take_rates_source": (
            ["source", "offered", "accepted", "taken", "rate"],
            lambda: selectors.take_rates(f, by="source"),
        ),
        "refunds": (
            ["kind", "offer_id", *REFUND_FIGURES],
            lambda: selectors.refund_rates(f, by="offer"),
        ),
        "refunds_kind": (
            ["kind", *REFUND_FIGURES],
            lambda: selectors.refund_rates(f, by="kind"),
        ),
        "cohorts": (
            ["cohort", "taker", "buyers"]
            + [c for d in LTV_DAYS for c in (f"ltv{d}", f"matured{d}")]
            + ["repeat_buyers", "repeat_rate"],
            lambda: selectors.cohort_ltv(f),
        ),
        "time_to_charge": (
            ["charges", "p50_seconds", "p95_seconds"],
            lambda: [selectors.time_to_charge(f)],
        ),
        "reliability": (["event", "reason", "events"], lambda: selectors.reliability(f)),
        "experiments": (
            [
                "experiment",
                "kind",
                "arm",
                "visitors",
                "takers",
                "buyers",
                "take_rate",
                "conversion",
                "revenue_per_visitor",
                "refund_rate",
                "repeat_rate",
                "planned_per_arm",
                "metric",
                "difference",
                "ci_lower",
                "ci_upper",
                "verdict",
            ],
            _experiment_rows,
        ),
        "alerts": (
            ["occurred_at", "offer_id", "reason", "properties"],
            lambda: selectors.alerts(f),
        ),
        "coupons": (conversion.COUPON_COLUMNS, lambda: conversion.coupon_performance(f)),
        "recovery": (conversion.RECOVERY_COLUMNS, lambda: conversion.recovery_performance(f)),
        # Subscriptions: MRR and its movements, trial conversion, payment-plan completion.
        **recurring_panel.views(f),
    }


def _csv(name: str, columns: list[str], rows: list[dict[str, Any]]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    writer = csv.writer(response)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return response


@staff_member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    try:
        f = _parse_filter(request.GET)
    except ValueError:
        return HttpResponseBadRequest("Dates are YYYY-MM-DD; offer and product are numeric ids.")
    # Fold what was written since the last refresh, so the page is current to the request.
    rollups_refresh()
    views = _views(f)
    export = request.GET.get("export")
    if export:
        if export not in views:
            return HttpResponseBadRequest(f"Unknown export; choose one of {', '.join(views)}.")
        columns, load = views[export]
        # The CSV is built whole (an HttpResponse, not streamed) before it is returned, so
        # the replica can fail under it and the export still be built again on the primary.
        return replica_reads_call(lambda: _csv(export, columns, load()))
    # On a configured replica once it has the refresh (core/replica.py): the panels' reads and
    # the context's own (the revenue series, the offer leaderboard, the experiment cards); on
    # the primary, from the start, if the replica fails under them.
    context = replica_reads_call(
        lambda: _context(request, f, views, {name: load() for name, (_, load) in views.items()})
    )
    return render(request, "analytics/dashboard.html", context)


def _context(request: HttpRequest, f: MetricFilter, views, data) -> dict[str, Any]:
    """Everything the page shows, formatted: money in its currency, rates as percentages."""
    funnel = insights.funnel_rows(data["funnel"])
    currency, days = insights.revenue_days(f)
    cohorts = [dict(r) for r in data["cohorts"]]  # formatted copies: `data` stays as read
    cohort_currency = currency or _store_currency(data)
    ltv_series = [
        (
            f"{r['cohort']:%Y-%m} {'takers' if r['taker'] else 'non-takers'}",
            [0] + [r[f"ltv{d}"] for d in LTV_DAYS],
        )
        for r in cohorts[-8:]
    ]
    leaderboard = insights.offer_leaderboard(f)
    order_value = [
        {
            **r,
            **{
                f"{k}_text": insights.money(r[k], r["currency"])
                for k in (
                    "gross",
                    "net",
                    "aov",
                    "net_aov",
                    "revenue_per_session",
                    "net_revenue_per_session",
                    "revenue_per_visitor",
                    "net_revenue_per_visitor",
                )
            },
        }
        for r in data["order_value"]
    ]
    for row in leaderboard:
        row["currency"] = cohort_currency
        for k in ("revenue", "returned", "net_revenue", "net_ltv_lift"):
            row[f"{k}_text"] = insights.money(row[k], cohort_currency)
        row["take_rate_text"] = insights.percent(row["take_rate"])
        row["refund_rate_text"] = insights.percent(row["refund_rate"])
    for row in cohorts:
        for d in LTV_DAYS:
            row[f"ltv{d}_text"] = insights.money(row[f"ltv{d}"], cohort_currency)
        row["repeat_rate_text"] = insights.percent(row["repeat_rate"])
    refunds_kind = [
        {
            **r,
            "refund_rate_text": insights.percent(r["refund_rate"]),
            "chargeback_rate_text": insights.percent(r["chargeback_rate"]),
            "refunded_text": insights.money(r["refunded_amount"], cohort_currency),
            "charged_text": insights.money(r["charged_amount"], cohort_currency),
        }
        for r in data["refunds_kind"]
    ]

    coupons = [
        {
            **r,
            "take_rate_text": insights.percent(r["take_rate"]),
            **{
                f"{k}_text": insights.money(r[k], r["currency"])
                for k in ("discount", "gross", "net")
            },
        }
        for r in data["coupons"]
    ]
    recovery = [
        {
            **r,
            "recovery_rate_text": insights.percent(r["recovery_rate"]),
            **{f"{k}_text": insights.money(r[k], r["currency"]) for k in ("gross", "net")},
        }
        for r in data["recovery"]
    ]

    def money_axis(value: float) -> str:
        return insights.money(round(value), currency or cohort_currency)

    has_visits = any(r["visitors"] for r in funnel)
    return {
        # The admin's header, sidebar and section navigation (storefront/admin_site.py).
        **admin.site.each_context(request),
        "title": "Insights: what your offers really earn",
        "filter": f,
        "params": request.GET,
        "data": data,
        "exports": list(views),
        "funnel": funnel,
        "has_visits": has_visits,
        "coupons": coupons,
        "recovery": recovery,
        "funnel_chart": charts.bar_chart(
            title="Funnel: visitors at each step, with the share of the step before",
            labels=[r["name"] for r in funnel],
            values=[r["visitors"] for r in funnel],
            value_text=[
                f"{r['visitors']:,}"
                + (f" · {insights.percent(r['conversion'])}" if r["conversion"] is not None else "")
                for r in funnel
            ],
            label_width=190,
        )
        if has_visits
        else "",
        "order_value": order_value,
        "currency": currency,
        "days": [
            {
                **d,
                "gross_text": insights.money(d["gross"], currency),
                "net_text": insights.money(d["net"], currency),
                "aov_text": insights.money(d["aov"], currency),
            }
            for d in days
        ],
        "revenue_chart": charts.line_chart(
            title=f"Revenue and net revenue per day ({currency})",
            x_labels=[f"{d['day']:%b %d}" for d in days],
            series=[("revenue", [d["gross"] for d in days]), ("net", [d["net"] for d in days])],
            y_format=money_axis,
        )
        if days
        else "",
        "aov_chart": charts.line_chart(
            title=f"Average order value per day ({currency})",
            x_labels=[f"{d['day']:%b %d}" for d in days],
            series=[("AOV", [d["aov"] for d in days])],
            y_format=money_axis,
        )
        if days
        else "",
        "leaderboard": leaderboard,
        "refunds_kind": refunds_kind,
        "cohorts": cohorts,
        "ltv_chart": charts.line_chart(
            title="Net LTV by cohort (days since first purchase)",
            x_labels=["0"] + [str(d) for d in LTV_DAYS],
            series=ltv_series,
            y_format=lambda v: insights.money(round(v), cohort_currency),
        )
        if any(v for _, ys in ltv_series for v in ys if v)
        else "",
        "experiments": insights.experiment_cards(),
        "subs": recurring_panel.panel(data),
        "now": timezone.now(),
        "direct": DIRECT,
    }


def _store_currency(data) -> str:
    rows = data["order_value"]
    return rows[0]["currency"] if rows else "USD"


@staff_member_required
def glossary(request: HttpRequest) -> HttpResponse:
    """docs/metrics.md, the one definition of every figure, as the dashboard links to it."""
    return render(
        request,
        "analytics/glossary.html",
        {
            **admin.site.each_context(request),
            "title": "What each figure means",
            "text": GLOSSARY.read_text(encoding="utf-8"),
        },
    )
