"""Issue: the store admin's home and the insights page, checked against the `*_direct`
oracles on a store whose orders, bumps, upsells, downsells, cross-sells and refunds were all
made through the real hosted pages, admin and API (tests/analytics/workload.py). Money is
shown in the store's currency, never in minor units; an empty store gets empty states."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from analytics import insights, selectors
from analytics.selectors import MetricFilter
from core.money import Money
from offers.models import Offer
from storefront.admin_home import home_periods
from tests.admin.conftest import owner_client  # noqa: F401 (a fixture)

pytestmark = pytest.mark.gateway


def _one(rows: list[dict], currency: str = "USD") -> dict:
    found = [r for r in rows if r["currency"] == currency]
    return found[0] if found else {"net": 0, "gross": 0, "orders": 0}


class TestOnTheWorkload:
    """One workload for the class (tests/analytics/conftest.py `workload_shared`); each
    test reads it in a savepoint of its own."""

    def test_the_homes_sales_equal_the_oracle_for_each_period_and_the_one_before(
        self,
        workload,
        owner_client,  # noqa: F811
    ):
        page = owner_client.get("/admin/")
        assert page.status_code == 200
        html = page.content.decode()
        sales = page.context["sales"]
        periods = home_periods()
        assert [s["period"] for s in sales] == periods
        for block in sales:
            p = block["period"]
            [row] = block["rows"]
            now = _one(selectors.order_value_direct(MetricFilter(start=p.start, end=p.end)))
            before = _one(
                selectors.order_value_direct(MetricFilter(start=p.compare_start, end=p.compare_end))
            )
            assert (row["net"], row["gross"], row["orders"]) == (
                now["net"],
                now["gross"],
                now["orders"],
            ), p.label
            assert row["previous_net"] == before["net"], p.label
            assert Money(now["net"], "USD").format() in html
        # Not trivially zero: six paid orders today, with refunds taken off.
        [today] = sales[0]["rows"]
        assert today["orders"] == 6 and 0 < today["net"] < today["gross"]
        assert today["change"] == "up from nothing"
        assert "minor units" not in html and "cents" not in html

    def test_the_home_lists_paused_offers_and_hides_attention_from_users_without_permission(
        self,
        workload,
        owner_client,  # noqa: F811
        client_for,
    ):
        offer = Offer.objects.filter(kind="upsell").first()
        Offer.objects.filter(pk=offer.pk).update(status=Offer.Status.PAUSED)
        page = owner_client.get("/admin/")
        keys = {a.key: a.count for a in page.context["attention"]}
        assert keys.get("paused_offers") == Offer.objects.filter(status="paused").count() == 1
        assert 'href="/admin/offers/offer/?status__exact=paused"' in page.content.decode()
        get_user_model().objects.create_user("helper", password="helper-pass-1", is_staff=True)
        helper = client_for("t1.localhost")
        assert helper.login(username="helper", password="helper-pass-1")
        assert helper.get("/admin/").context["attention"] == []

    def test_the_dashboards_figures_equal_the_oracles(
        self,
        workload,
        owner_client,  # noqa: F811
    ):
        page = owner_client.get("/admin/analytics/dashboard/")
        assert page.status_code == 200
        html = page.content.decode()
        everything = MetricFilter()
        # Revenue, AOV, net: per currency and per day.
        [shown] = page.context["order_value"]
        [oracle] = selectors.order_value_direct(everything)
        for figure in ("orders", "gross", "net", "aov", "net_aov"):
            assert shown[figure] == oracle[figure], figure
        assert (
            shown["net_text"] == Money(oracle["net"], "USD").format() and shown["net_text"] in html
        )
        days = page.context["days"]
        by_day = {r["day"]: r for r in selectors.order_value_by_day_direct(everything)}
        assert by_day and all(d["day"] in by_day or d["orders"] == 0 for d in days)
        for d in days:
            if d["day"] not in by_day:
                continue
            start = dt.datetime.combine(d["day"], dt.time(), tzinfo=dt.UTC)
            [that_day] = selectors.order_value_direct(
                MetricFilter(start=start, end=start + dt.timedelta(days=1))
            )
            for figure in ("orders", "gross", "net", "aov"):
                assert d[figure] == by_day[d["day"]][figure] == that_day[figure], figure
        assert sum(d["gross"] for d in days) == oracle["gross"]
        # Funnel: visitors per step and each step's conversion from the oracle's own counts.
        funnel = {r["step"]: r for r in selectors.funnel_direct(everything)}
        for row in page.context["funnel"]:
            assert row["visitors"] == funnel[row["step"]]["visitors"]
            base = insights.STEP_BASE.get(row["step"])
            if base:
                expected = selectors.rate(row["visitors"], funnel[base]["visitors"])
                assert row["conversion"] == expected, row["step"]
        assert any(r["conversion"] for r in page.context["funnel"])
        # The leaderboard: take rate, revenue, refunds, refund rate and net LTV lift per offer.
        takes = {r["offer"]: r for r in selectors.take_rates_direct(everything, by="offer")}
        money = {
            r["offer_id"]: r
            for r in selectors.refund_rates_direct(everything, by="offer")
            if r["offer_id"]
        }
        board = page.context["leaderboard"]
        assert {r["offer"] for r in board} == set(Offer.objects.values_list("pk", flat=True))
        checked = 0
        for r in board:
            t = takes.get(r["offer"], {"rate": None, "taken": 0})
            m = money.get(r["offer"])
            assert r["take_rate"] == t["rate"] and r["taken"] == t["taken"]
            if m:
                checked += 1
                assert r["revenue"] == m["charged_amount"]
                assert r["net_revenue"] == (
                    m["charged_amount"] - m["refunded_amount"] - m["charged_back_amount"]
                )
                assert r["refund_rate"] == m["refund_rate"]
            lift = insights.net_ltv_lift(
                selectors.cohort_ltv_direct(MetricFilter(offer_id=r["offer"]))
            )
            assert r["net_ltv_lift"] == lift
            assert r["status"] == Offer.objects.get(pk=r["offer"]).status
        assert checked >= 3  # bump, upsell, downsell, cross-sell were sold
        assert "minor units" not in html and "0.01" not in html

    def test_an_offers_page_says_what_it_earns_as_the_oracle_counts_it(
        self,
        workload,
        owner_client,  # noqa: F811
    ):
        from decimal import ROUND_HALF_UP, Decimal

        for offer in Offer.objects.all():
            f = MetricFilter(offer_id=offer.pk)
            takes = {r["offer"]: r for r in selectors.take_rates_direct(f, by="offer")}
            page = owner_client.get(f"/admin/offers/offer/{offer.pk}/change/").content.decode()
            t = takes.get(offer.pk)
            if not t:
                assert "Not shown to a paying buyer yet." in page
                continue
            [m] = [r for r in selectors.refund_rates_direct(f, by="offer") if r["offer_id"]]
            rate = f"{(t['rate'] * 100).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}%"
            earns = page[page.index("What it earns") :][:600]
            assert f"taken on {t['taken']} ({rate})" in earns, earns
            assert f"revenue {Money(m['charged_amount'], 'USD').format()}" in page
            assert f'href="/admin/analytics/dashboard/?offer={offer.pk}"' in page


def test_the_periods_are_today_vs_yesterday_and_month_to_date_vs_the_same_days_before():
    now = dt.datetime(2026, 3, 31, 15, 0, tzinfo=dt.UTC)
    today, month = home_periods(now)
    assert (today.start, today.end) == (
        dt.datetime(2026, 3, 31, tzinfo=dt.UTC),
        dt.datetime(2026, 4, 1, tzinfo=dt.UTC),
    )
    assert today.compare_start == dt.datetime(2026, 3, 30, tzinfo=dt.UTC)
    assert month.start == dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    # February has 28 days in 2026: the whole month, not into March.
    assert (month.compare_start, month.compare_end) == (
        dt.datetime(2026, 2, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
    )
    assert month.compare_label == "Feb 1–28"


def test_net_ltv_lift_is_takers_less_non_takers_weighted_by_matured_buyers():
    cohorts = [
        {"taker": True, "matured30": 2, "ltv30": 5000},
        {"taker": True, "matured30": 1, "ltv30": 2000},
        {"taker": False, "matured30": 3, "ltv30": 3000},
        {"taker": False, "matured30": 0, "ltv30": None},
    ]
    assert insights.net_ltv_lift(cohorts) == 1000  # (2·5000 + 2000)/3 − 3000
    assert insights.net_ltv_lift(cohorts[2:]) is None  # no takers matured: no figure


def test_an_empty_store_gets_empty_states_not_empty_axes(tenant, client_for):
    client: Client = client_for("t1.localhost")
    assert client.login(username="owner", password="owner-pass-123")
    html = client.get("/admin/analytics/dashboard/").content.decode()
    assert '<svg role="img"' not in html
    for state in ("empty-revenue", "empty-funnel", "empty-offers", "empty-ltv"):
        assert f'id="{state}"' in html, state
    assert 'href="/admin/offers/offer/add/"' in html
    home = client.get("/admin/")
    assert home.context["sales"][0]["rows"][0]["net_text"] == "$0.00"
    body = home.content.decode()
    assert "Get your store ready" in body and "no sales to compare with" in body.lower()


def test_experiments_read_in_plain_words():
    from analytics.experiments import ExperimentReport
    from analytics.stats import SequentialResult

    def report(n_a, n_b, diff, lo, hi, decided, planned=1000):
        result = SequentialResult(
            n_a=n_a,
            n_b=n_b,
            rate_a=0.10,
            rate_b=0.10 + diff,
            difference=diff,
            lower=lo,
            upper=hi,
            likelihood_ratio=1.0,
            p_value=1.0,
            decided=decided,
        )
        return ExperimentReport(
            experiment=None,
            planned_per_arm=planned,
            arms=[],
            metric="take rate",
            arm_a="A",
            arm_b="B",
            result=result,
            verdict="",
            notes=[],
        )

    assert insights.plain_words(report(0, 0, 0, 0, 0, False)).startswith("Not enough data yet")
    early = insights.plain_words(report(120, 118, 0.01, -0.05, 0.07, False))
    assert early.startswith("Not enough data yet: 118 of 1,000") and "-5 and +7 points" in early
    ahead = insights.plain_words(report(2000, 2000, 0.04, 0.02, 0.06, True))
    assert ahead.startswith("“B” is ahead by 2–6 points on take rate")
    behind = insights.plain_words(report(2000, 2000, -0.04, -0.06, -0.02, True))
    assert behind.startswith("“A” is ahead by 2–6 points")
    flat = insights.plain_words(report(1500, 1500, 0.0, -0.01, 0.01, False))
    assert flat.startswith("No clear winner")
