"""Metric selectors against the hand-computed store in conftest.py.

Ledger by order (USD cents): o1 5800 charged, 900 refunded (day 10); o2 7600 charged, 2700
charged back (day 48); o3 4900; o4 (Alice again, day 36) 4900; o5 4900 charged, 4900
refunded; o6 never paid.
"""

from decimal import Decimal

from analytics import selectors
from analytics.selectors import MetricFilter
from tests.orders import AS_OF, at


def test_aov_and_revenue_per_session_count_every_paid_order_and_visitor(hand_store):
    [usd] = selectors.order_value(MetricFilter())
    # 5 paid orders, 28,100 charged, 8,500 returned; 6 visitors started or viewed, on 7
    # visitor-days (v1 came back on 15 Feb).
    assert usd == {
        "currency": "USD",
        "orders": 5,
        "sessions": 7,
        "visitors": 6,
        "gross": 28100,
        "net": 19600,
        "aov": 5620,
        "net_aov": 3920,
        "revenue_per_session": 4014,
        "net_revenue_per_session": 2800,
        "revenue_per_visitor": 4683,
        "net_revenue_per_visitor": 3267,
    }


def test_source_filter_keeps_only_that_sources_orders_and_sessions(hand_store):
    [usd] = selectors.order_value(MetricFilter(source="ig"))
    # o1, o3, o4, o5: 5800 + 4900 + 4900 + 4900; visitors v1 (two days), v3, v4, v5.
    assert (usd["orders"], usd["gross"], usd["aov"], usd["sessions"]) == (4, 20500, 5125, 5)
    assert (usd["visitors"], usd["revenue_per_session"]) == (4, 4100)


def test_the_direct_source_is_a_filter_of_its_own_not_the_absence_of_one(hand_store):
    assert selectors.order_value(MetricFilter(source="")) == []  # every order has a source
    assert selectors.order_value(MetricFilter(source=None))[0]["orders"] == 5


def test_date_range_filter_excludes_orders_outside_it(hand_store):
    [usd] = selectors.order_value(MetricFilter(start=at(2, 1), end=at(3, 1)))
    assert (usd["orders"], usd["gross"], usd["net"]) == (2, 9800, 4900)  # o4 and o5


def test_take_rate_per_offer_is_paid_lines_over_paid_orders_offered(hand_store):
    rows = {r["offer"]: r for r in selectors.take_rates(MetricFilter())}
    assert rows[hand_store.bump.pk] == {
        "offer": hand_store.bump.pk,
        "offered": 4,
        "accepted": 1,
        "taken": 1,
        "rate": Decimal("0.2500"),
    }
    assert rows[hand_store.upsell.pk]["rate"] == Decimal("0.3333")


def test_take_rate_per_source_splits_offers_by_attribution(hand_store):
    rows = {
        r["source"]: (r["offered"], r["taken"], r["rate"])
        for r in selectors.take_rates(MetricFilter(), by="source")
    }
    assert rows == {"ig": (5, 1, Decimal("0.2000")), "ads": (2, 1, Decimal("0.5000"))}


def test_refund_and_chargeback_rates_per_offer_come_from_the_ledger(hand_store):
    rows = {r["offer_id"]: r for r in selectors.refund_rates(MetricFilter())}
    bump, upsell = rows[hand_store.bump.pk], rows[hand_store.upsell.pk]
    assert (bump["sold"], bump["refunded_lines"], bump["chargebacks"], bump["refund_rate"]) == (
        1,
        1,
        0,
        Decimal("1.0000"),
    )
    assert bump["refunded_amount"] == 900
    assert (upsell["sold"], upsell["chargebacks"], upsell["chargeback_rate"]) == (
        1,
        1,
        Decimal("1.0000"),
    )
    assert upsell["refund_rate"] == Decimal("0.0000")
    assert upsell["charged_back_amount"] == 2700


def test_cohort_ltv_is_net_of_refunds_and_chargebacks_for_takers_and_non_takers(hand_store):
    rows = {
        (str(r["cohort"]), r["taker"]): r for r in selectors.cohort_ltv(MetricFilter(), as_of=AS_OF)
    }
    jan_takers = rows[("2026-01-01", True)]
    # Alice: 5800 − 900 by day 30, + 4900 (day 36) by day 60. Bob: 7600 by day 30, − 2700
    # chargeback on day 48. Averages: (4900 + 7600)/2, (9800 + 4900)/2, (9800 + 4900)/2.
    assert (
        jan_takers["buyers"],
        jan_takers["ltv30"],
        jan_takers["ltv60"],
        jan_takers["ltv90"],
    ) == (2, 6250, 7350, 7350)
    assert jan_takers["repeat_rate"] == Decimal("0.5000")
    jan_others = rows[("2026-01-01", False)]
    assert (jan_others["buyers"], jan_others["ltv30"], jan_others["ltv90"]) == (1, 4900, 4900)
    assert jan_others["repeat_rate"] == Decimal("0.0000")
    feb = rows[("2026-02-01", False)]  # Dan, fully refunded; Alice's Feb order is not a cohort
    assert (feb["buyers"], feb["ltv30"], feb["ltv90"]) == (1, 0, 0)
    assert len(rows) == 3


def test_cohort_ltv_leaves_out_buyers_whose_window_has_not_passed(hand_store):
    rows = {
        (str(r["cohort"]), r["taker"]): r
        for r in selectors.cohort_ltv(MetricFilter(), as_of=at(3, 20))
    }
    # By 20 Mar, January buyers have 60 days behind them but not 90.
    jan = rows[("2026-01-01", True)]
    assert (jan["matured60"], jan["ltv60"], jan["matured90"], jan["ltv90"]) == (2, 7350, 0, None)


def test_cohort_ltv_with_a_source_filter_keeps_only_that_sources_buyers(hand_store):
    rows = {
        (str(r["cohort"]), r["taker"]): r
        for r in selectors.cohort_ltv(MetricFilter(source="ig"), as_of=AS_OF)
    }
    assert rows[("2026-01-01", True)]["buyers"] == 1  # Bob came from ads
    assert (rows[("2026-01-01", True)]["ltv30"], rows[("2026-01-01", True)]["ltv60"]) == (
        4900,
        9800,
    )


def test_cohort_ltv_with_an_offer_filter_compares_that_offers_takers(hand_store):
    rows = {
        (str(r["cohort"]), r["taker"]): r["buyers"]
        for r in selectors.cohort_ltv(MetricFilter(offer_id=hand_store.upsell.pk), as_of=AS_OF)
    }
    assert rows == {("2026-01-01", True): 1, ("2026-01-01", False): 2, ("2026-02-01", False): 1}


def test_time_to_charge_percentiles_cover_only_successful_upsells_and_downsells(hand_store):
    ttc = selectors.time_to_charge(MetricFilter())
    # 4 s and 10 s: p50 = 7, p95 = 4 + 0.95 × 6 = 9.7 (linear interpolation).
    assert ttc["charges"] == 2
    assert round(ttc["p50_seconds"], 3) == 7 and round(ttc["p95_seconds"], 3) == 9.7
    assert selectors.time_to_charge(MetricFilter(source="ads"))["p50_seconds"] == 4


def test_idempotency_conflicts_and_upsell_failures_are_counted_by_reason(hand_store):
    rows = [(r["event"], r["reason"], r["events"]) for r in selectors.reliability(MetricFilter())]
    assert rows == [
        ("idempotency_conflict", "key_reused", 2),
        ("upsell_failed", "card_declined", 2),
        ("upsell_failed", "authentication_required", 1),
    ]


def test_funnel_counts_each_step(hand_store):
    steps = {r["step"]: (r["events"], r["visitors"]) for r in selectors.funnel(MetricFilter())}
    assert steps["page_viewed"] == (1, 1)
    assert steps["checkout_initiated"] == (6, 5)
    assert steps["checkout_completed"] == (5, 4)
    assert steps["bump_offered"] == (4, 4) and steps["bump_accepted"] == (1, 1)
    assert steps["upsell_charged"] == (0, 0)
