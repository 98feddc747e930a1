"""The dashboard's read models (analytics/rollups.py) against the direct queries on the source
tables, after a series of writes that includes refunds, chargebacks, a line added after payment
and a back-dated event."""

import datetime as dt

import pytest
from django.core.management import call_command

from analytics import selectors
from analytics.models import (
    CustomerSummary,
    EventDay,
    OfferLineSummary,
    OrderSummary,
    RollupQueue,
    VisitorDay,
)
from analytics.rollups import rollups_rebuild, rollups_refresh
from analytics.selectors import MetricFilter
from storefront.models import Customer, OrderLine
from tests.orders import AS_OF, at, event, ledger, make_order

METRICS = ("funnel", "traffic", "order_value", "take_rates", "refund_rates", "cohort_ltv")


def _filters(store):
    return [
        MetricFilter(),
        MetricFilter(source="ig"),
        MetricFilter(source="ads"),
        MetricFilter(end=at(3, 1, hour=0)),
        MetricFilter(start=at(1, 1, hour=0), end=at(2, 1, hour=0), source="ig"),
        MetricFilter(start=at(2, 1), end=at(3, 1)),  # not whole days
        MetricFilter(offer_id=store.upsell.pk),
        MetricFilter(offer_id=store.bump.pk, source="ig"),
        MetricFilter(product_id=store.core.pk),
    ]


def _both(name, f):
    read, direct = getattr(selectors, name), getattr(selectors, f"{name}_direct")
    if name == "cohort_ltv":
        return read(f, as_of=AS_OF), direct(f, as_of=AS_OF)
    if name == "take_rates":
        return (read(f) + read(f, by="source"), direct(f) + direct(f, by="source"))
    if name == "refund_rates":
        return (read(f) + read(f, by="kind"), direct(f) + direct(f, by="kind"))
    return read(f), direct(f)


def _assert_all_match(store):
    for f in _filters(store):
        for name in METRICS:
            read, direct = _both(name, f)
            assert read == direct, (name, f)


def _more_writes(store):
    """A new buyer (ig) with core + bump, the bump refunded and the core charged back; Carol
    takes an upsell on her January order after payment and buys again; a back-dated page view
    for a visitor first seen later; a new event the counters have not seen."""
    frank = Customer.objects.create(email="frank@buyer.example")
    o7, (o7_core, o7_bump) = make_order(
        frank,
        visitor="v7",
        source="ig",
        paid_at=at(3, 2),
        lines=[("core", store.core, None, 4900), ("bump", store.bump.product, store.bump, 900)],
    )
    ledger(o7_bump, "refund", 900, at(3, 4))
    ledger(o7_core, "chargeback", 4900, at(4, 1))
    event("checkout_initiated", at(3, 2), o7, product_id=store.core.pk)
    event("bump_offered", at(3, 2), o7, offer_id=store.bump.pk)
    event("bump_accepted", at(3, 2), o7, offer_id=store.bump.pk)

    o3 = store.orders[2]
    line = OrderLine.objects.create(
        order=o3,
        kind="upsell",
        product=store.upsell.product,
        offer=store.upsell,
        description="upsell",
        net_amount=2700,
        tax_amount=0,
        total_amount=2700,
        currency="USD",
        tax_rate="0",
        tax_inclusive=False,
        tax_country="US",
    )
    OrderLine.objects.filter(pk=line.pk).update(created_at=at(1, 15))
    ledger(line, "charge", 2700, at(1, 15, second=30))
    ledger(line, "refund", 2700, at(2, 20))
    make_order(
        o3.customer,
        visitor="v3",
        source="ig",
        paid_at=at(3, 10),
        lines=[("core", store.core, None, 4900)],
    )

    # v7 first seen on 2 Mar above; this page view back-dated to 5 Jan moves their first visit.
    event("page_viewed", at(1, 5), visitor_id="v7", source="ig", product_id=store.core.pk)
    event("upsell_offered", at(3, 2), o7, offer_id=store.upsell.pk)


def test_read_models_match_the_direct_queries_for_the_hand_computed_store(hand_store):
    _assert_all_match(hand_store)


def test_read_models_match_the_direct_queries_after_refunds_chargebacks_and_late_writes(
    hand_store,
):
    _more_writes(hand_store)
    assert RollupQueue.objects.exists()
    rollups_refresh()
    assert not RollupQueue.objects.exists()
    _assert_all_match(hand_store)
    # The figures moved: Frank is a March taker; his bump was refunded on day 2 and his core
    # charged back on day 30 (1 Apr, noon: not before day 30 ends), so 5800 − 900 = 4900 at
    # 30 days and 4900 − 4900 = 0 at 60.
    march = {
        (str(r["cohort"]), r["taker"]): r
        for r in selectors.cohort_ltv(MetricFilter(), as_of=at(6, 1))
    }[("2026-03-01", True)]
    assert (march["buyers"], march["ltv30"], march["ltv60"]) == (1, 4900, 0)
    carol = CustomerSummary.objects.get(first_order_id=hand_store.orders[2].pk)
    assert carol.first_took and carol.second_paid_at == at(3, 10)


def test_the_dashboard_reads_the_read_models_so_they_lag_until_refreshed(hand_store):
    before = selectors.order_value(MetricFilter())
    _more_writes(hand_store)
    assert selectors.order_value(MetricFilter()) == before  # not folded in yet
    assert selectors.order_value_direct(MetricFilter()) != before
    rollups_refresh()
    assert selectors.order_value(MetricFilter()) == selectors.order_value_direct(MetricFilter())


def test_a_back_dated_event_moves_a_visitors_first_visit_without_counting_them_twice(hand_store):
    event("page_viewed", at(3, 1), visitor_id="v9", source="ig")
    rollups_refresh()
    event("page_viewed", at(1, 2), visitor_id="v9", source="ig")
    rollups_refresh()
    for f in (MetricFilter(), MetricFilter(end=at(2, 1, hour=0)), MetricFilter(source="ig")):
        assert selectors.funnel(f) == selectors.funnel_direct(f)
    steps = {r["step"]: r["visitors"] for r in selectors.funnel(MetricFilter(end=at(2, 1, 0)))}
    assert steps["page_viewed"] == 2  # v5 and v9, once each


def _snapshot() -> dict:
    return {
        "orders": sorted(
            OrderSummary.objects.values_list(
                "order_id",
                "charged",
                "refunded",
                "charged_back",
                "offered_ids",
                "accepted_ids",
                "taken_ids",
            )
        ),
        "lines": sorted(
            OfferLineSummary.objects.values_list(
                "line_id", "kind", "offer_id", "paid_at", "charged", "refunded", "charged_back"
            )
        ),
        "days": sorted(EventDay.objects.values_list("day", "name", "source", "offer_id", "events")),
        "visitor_days": sorted(VisitorDay.objects.values_list("day", "scope", "visitor_id")),
        "buyers": sorted(
            CustomerSummary.objects.values_list("customer_id", "net30", "net60", "net90")
        ),
    }


def test_refreshing_twice_changes_nothing_and_equals_a_full_rebuild(hand_store):
    _more_writes(hand_store)
    rollups_refresh()
    snapshot = _snapshot()
    assert rollups_refresh() == {"events": 0, "orders": 0}
    lines = []
    rollups_rebuild(progress=lines.append)
    assert [line.split(":")[0] for line in lines] == [
        "daily event counters",
        "first visits",
        "first-visit counters",
        "visitor days",
        "order summaries",
        "offer-line summaries",
        "buyer summaries",
    ]
    assert snapshot == _snapshot()
    _assert_all_match(hand_store)


def test_the_backfill_command_shows_progress_and_leaves_the_queue_empty(hand_store, capsys):
    _more_writes(hand_store)
    call_command("analytics_backfill")
    out = capsys.readouterr().out
    assert "order summaries: 7 rows" in out and "done: " in out
    assert not RollupQueue.objects.exists()
    _assert_all_match(hand_store)


@pytest.mark.parametrize("hours", [0, 13])
def test_whole_day_filters_use_the_counters_and_part_days_the_events(hand_store, hours):
    f = MetricFilter(end=dt.datetime(2026, 1, 12, hours, tzinfo=dt.UTC))
    assert selectors.funnel(f) == selectors.funnel_direct(f)
    assert selectors.take_rates(f) == selectors.take_rates_direct(f)


def test_a_won_dispute_nets_to_zero_in_every_figure_and_the_read_models_agree(hand_store):
    """A chargeback and the reinstatement of a won dispute (payments.disputes) on a paid line:
    every metric, read model and direct query alike, is what it was before the dispute."""
    before = {(name, str(f)): _both(name, f)[0] for f in _filters(hand_store) for name in METRICS}
    line = hand_store.orders[0].lines.get(kind="core")
    ledger(line, "chargeback", line.total_amount, at(2, 3))
    rollups_refresh()
    _assert_all_match(hand_store)
    disputed = selectors.order_value(MetricFilter())
    assert disputed != before[("order_value", str(MetricFilter()))]  # the chargeback shows
    ledger(line, "reinstated", line.total_amount, at(2, 3, hour=18))
    rollups_refresh()
    _assert_all_match(hand_store)
    after = {(name, str(f)): _both(name, f)[0] for f in _filters(hand_store) for name in METRICS}
    assert after == before
