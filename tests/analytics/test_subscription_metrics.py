"""Subscription analytics, honest: a history built day by day with a clock the test moves
(subscriptions, a trial, payment plans, renewals, a refund, a chargeback, dunning, an
upgrade and a cancellation at period end); every figure equals its `*_direct` oracle AND the
numbers worked out by hand below, so a wrong oracle fails too."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
import time_machine
from django.db import transaction

from analytics import selectors
from analytics.selectors import MetricFilter, recurring
from core.money import Money
from payments import services as payments
from payments.models import LedgerEntry, LedgerKind
from subscriptions import services
from subscriptions.models import Subscription
from tests import gateway_helpers as gw
from tests.subscriptions.helpers import at, plan, start

pytestmark = pytest.mark.gateway

ALL = MetricFilter()


def start_again(previous: Subscription, plan_row, *, started_at) -> Subscription:
    """The same buyer subscribing again with the card already saved."""
    with transaction.atomic():
        return services.subscription_start(
            plan=plan_row,
            customer_id=previous.customer_id,
            order_id=None,
            line_key="",
            amount=Money(plan_row.product.price_amount, "USD"),
            tax_amount=0,
            started_at=started_at,
            customer_ref=previous.customer_ref,
            payment_method_ref=previous.payment_method_ref,
            first_paid=True,
        )


def renewal_entry(sub: Subscription, period: int) -> LedgerEntry:
    return LedgerEntry.objects.get(
        reference=sub.reference, line_key=f"sub:{sub.pk}:{period}", kind=LedgerKind.CHARGE
    )


def build_history(traveller) -> dict[str, Subscription]:
    """Jan 10 → May 19 2027, day by day: the day's events at 12:00, the renewal beat at 13:00.

    Monthly values: P1 30.00/month = 3000; P2 120.00/year = 1000; P3 10.00/week =
    1000 × 52 / 12 = 4333; P4 20.00/month after a 14-day trial = 2000. P5 is a payment plan
    (3 × 50.00): never MRR.
    """
    p1 = plan(price=3000)
    p2 = plan(price=12000, unit="year")
    p3 = plan(price=1000, unit="week")
    p4 = plan(price=2000, trial_days=14)
    p5 = plan(price=5000, instalments=3)
    subs: dict[str, Subscription] = {}

    def a_refund(key: str, period: int) -> None:
        entry = renewal_entry(subs[key], period)
        payments.refund_create(
            reference=entry.reference, line_key=entry.line_key, amount=Money(entry.amount, "USD")
        )

    def a_chargeback(key: str, period: int) -> None:
        entry = renewal_entry(subs[key], period)
        payments._ledger_add(
            kind=LedgerKind.CHARGEBACK,
            gateway_ref=f"dp_{key}",
            reference=entry.reference,
            line_key=entry.line_key,
            amount=entry.amount,
            currency="USD",
        )
        dispute_lost(entry)  # decided the same day: the subscription ends (payments.disputes)

    events = {
        dt.date(2027, 1, 10): lambda now: subs.update(A1=start(p1, started_at=now, email="a@x.t")),
        dt.date(2027, 1, 12): lambda now: subs.update(
            G=start(p5, started_at=now, email="g@x.t", first_paid=True),
            H=start(
                p5,
                started_at=now,
                email="h@x.t",
                card=gw.CARD_DECLINE_AT_CHARGE,
                first_paid=True,
            ),
        ),
        dt.date(2027, 1, 15): lambda now: subs.update(B=start(p2, started_at=now, email="b@x.t")),
        dt.date(2027, 1, 20): lambda now: subs.update(
            C=start(p4, started_at=now, email="c@x.t"), D=start(p4, started_at=now, email="d@x.t")
        ),
        dt.date(2027, 1, 25): lambda now: services.subscription_cancel_now(
            subscription_id=subs["D"].pk, by="buyer"
        ),
        dt.date(2027, 2, 1): lambda now: subs.update(F1=start(p1, started_at=now, email="f@x.t")),
        dt.date(2027, 2, 5): lambda now: subs.update(E=start(p3, started_at=now, email="e@x.t")),
        dt.date(2027, 2, 20): lambda now: a_refund("A1", 1),
        dt.date(2027, 3, 5): lambda now: subs.update(
            F2=start_again(subs["F1"], p2, started_at=now)
        ),
        dt.date(2027, 3, 15): lambda now: a_chargeback("C", 1),
        dt.date(2027, 3, 20): lambda now: subs.update(I=start(p5, started_at=now, email="i@x.t")),
        dt.date(2027, 4, 2): lambda now: services.subscription_cancel_at_period_end(
            subscription_id=subs["F1"].pk, by="buyer"
        ),
        dt.date(2027, 4, 10): lambda now: subs.update(
            A2=start_again(subs["A1"], p1, started_at=now)
        ),
    }
    day = dt.date(2027, 1, 10)
    while day < dt.date(2027, 5, 20):
        noon = at(day.year, day.month, day.day, 12)
        traveller.move_to(noon)
        if day in events:
            events[day](noon)
        beat = noon + dt.timedelta(hours=1)
        traveller.move_to(beat)
        services.renewals_run(now=beat)
        day += dt.timedelta(days=1)
    for sub in subs.values():
        sub.refresh_from_db()
    return subs


AS_OF = at(2027, 5, 20, 0)
URL = "/admin/analytics/dashboard/"


def _dashboard_shows_the_panel(client_for) -> None:
    """The creator's panel and CSVs on 20 May 2027: the selectors' numbers, in dollars."""
    from tests.analytics.conftest import staff_client_make

    client = staff_client_make(client_for)
    html = client.get(URL).content.decode()
    assert 'id="h-subscriptions"' in html and 'aria-label="MRR per month (chart)"' in html
    assert "MRR at the end of May 2027 (so far): <strong>$93.33</strong> from 4 subscribers" in html
    assert '<td class="num">$40.00</td>' in html  # January's new MRR
    assert '<td class="num">-32.1%</td>' in html  # April's net revenue churn
    assert '<td class="num">$300.00</td>' in html  # plans scheduled in January
    assert 'id="empty-subscriptions"' not in html
    assert '<td class="num">$120.00</td>' in html  # March's renewals, net of the dispute
    for name, columns in (
        ("mrr", recurring.MRR_COLUMNS),
        ("trials", recurring.TRIAL_COLUMNS),
        ("payment_plans", recurring.PLAN_COLUMNS),
        ("renewal_revenue", recurring.RENEWAL_COLUMNS),
    ):
        response = client.get(URL, {"export": name})
        assert response["Content-Type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(response.content.decode())))
        assert rows[0] == columns
    rows = list(csv.DictReader(io.StringIO(client.get(URL, {"export": "mrr"}).content.decode())))
    assert [(r["month"], r["new"], r["churned"], r["mrr_end"]) for r in rows] == [
        ("2027-01-01", "4000", "0", "4000"),
        ("2027-02-01", "9333", "3000", "10333"),
        ("2027-03-01", "0", "2000", "9333"),
        ("2027-04-01", "0", "0", "12333"),
        ("2027-05-01", "0", "0", "9333"),
    ]


def _the_partner_api_answers_the_same(client_for) -> None:
    from partners.models import ApiKey
    from partners.services import api_key_create

    token = api_key_create(name="reader", scope=ApiKey.Scope.READ).token
    api = client_for("t1.localhost")
    got = api.get("/api/v1/metrics/subscriptions/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert got.status_code == 200, got.content
    body = got.json()
    assert [(r["month"], r["mrr_end"], r["net_revenue_churn_rate"]) for r in body["mrr"]] == [
        ("2027-01-01", 4000, None),
        ("2027-02-01", 10333, "0.7500"),
        ("2027-03-01", 9333, "0.0968"),
        ("2027-04-01", 12333, "-0.3214"),
        ("2027-05-01", 9333, "0.2432"),
    ]
    assert body["trials"][0]["conversion_rate"] == "0.5000"
    assert [(r["completed"], r["defaulted"], r["in_progress"]) for r in body["payment_plans"]] == [
        (1, 1, 0),
        (0, 0, 1),
    ]
    april = api.get(
        "/api/v1/metrics/subscriptions/",
        {"start": "2027-04-01T00:00:00Z", "end": "2027-05-01T00:00:00Z"},
        HTTP_AUTHORIZATION=f"Bearer {token}",
    ).json()
    assert [(r["month"], r["reactivation"]) for r in april["mrr"]] == [("2027-04-01", 3000)]
    assert april["trials"] == [] and april["payment_plans"] == []
    assert [r["net"] for r in april["renewal_revenue"]] == [13000]


def test_the_panel_says_what_to_do_when_there_are_no_subscriptions(tenant, client_for):
    from tests.analytics.conftest import staff_client_make

    html = staff_client_make(client_for).get(URL).content.decode()
    assert 'id="empty-subscriptions"' in html and "Subscriptions → Plans" in html
    assert 'id="empty-trials"' in html and 'id="empty-plans"' in html
    assert 'id="empty-renewals"' in html


def _d(value: str) -> Decimal:
    return Decimal(value)


EXPECTED_MRR = [
    # month, start, new, expansion, reactivation, contraction, churned, end,
    # customers start/new/reactivated/churned/end, logo, revenue, net revenue churn
    ("2027-01-01", 0, 4000, 0, 0, 0, 0, 4000, 0, 2, 0, 0, 2, None, None, None),
    ("2027-02-01", 4000, 9333, 0, 0, 0, 3000, 10333, 2, 3, 0, 1, 4, "0.5", "0.75", "0.75"),
    ("2027-03-01", 10333, 0, 1000, 0, 0, 2000, 9333, 4, 0, 0, 1, 3, "0.25", "0.1936", "0.0968"),
    ("2027-04-01", 9333, 0, 0, 3000, 0, 0, 12333, 3, 0, 1, 0, 4, "0", "0", "-0.3214"),
    ("2027-05-01", 12333, 0, 0, 0, 3000, 0, 9333, 4, 0, 0, 0, 4, "0", "0.2432", "0.2432"),
]


def test_mrr_churn_trials_and_plans_equal_their_oracles_and_the_hand_computed_history(
    tenant, client_for
):
    with time_machine.travel(at(2027, 1, 10, 11), tick=False) as traveller:
        subs = build_history(traveller)
        traveller.move_to(AS_OF)
        _dashboard_shows_the_panel(client_for)
        _the_partner_api_answers_the_same(client_for)
    # The history happened as planned.
    assert (subs["A1"].status, subs["A1"].end_reason) == ("canceled", "refunded")
    assert (subs["C"].status, subs["C"].end_reason) == ("canceled", "chargeback")
    assert subs["C"].ended_at == at(2027, 3, 15, 12)
    assert (subs["D"].status, subs["F1"].end_reason) == ("canceled", "canceled_at_period_end")
    assert subs["F1"].ended_at == at(2027, 5, 1, 12)
    assert (subs["G"].status, subs["H"].status, subs["H"].end_reason) == (
        "completed",
        "canceled",
        "dunning",
    )
    assert subs["I"].status == "active" and subs["E"].periods.count() == 15

    mrr = selectors.mrr_movements(ALL, as_of=AS_OF)
    assert mrr == selectors.mrr_movements_direct(ALL, as_of=AS_OF)
    keys = [
        "month",
        "mrr_start",
        "new",
        "expansion",
        "reactivation",
        "contraction",
        "churned",
        "mrr_end",
        "customers_start",
        "new_customers",
        "reactivated_customers",
        "churned_customers",
        "customers_end",
    ]
    got = [tuple([str(r["month"])] + [r[k] for k in keys[1:]]) for r in mrr]
    assert got == [row[:13] for row in EXPECTED_MRR]
    assert {r["currency"] for r in mrr} == {"USD"}
    for r, row in zip(mrr, EXPECTED_MRR, strict=True):
        rates = (r["logo_churn_rate"], r["revenue_churn_rate"], r["net_revenue_churn_rate"])
        assert rates == tuple(None if v is None else _d(v) for v in row[13:]), r["month"]
        assert (
            r["mrr_start"]
            + r["new"]
            + r["expansion"]
            + r["reactivation"]
            - r["contraction"]
            - r["churned"]
            == r["mrr_end"]
        )

    # A range and a product: March and April only; the weekly product alone.
    spring = MetricFilter(start=at(2027, 3, 1, 0), end=at(2027, 5, 1, 0))
    assert [r["month"].month for r in selectors.mrr_movements(spring, as_of=AS_OF)] == [3, 4]
    assert selectors.mrr_movements(spring, as_of=AS_OF) == selectors.mrr_movements_direct(
        spring, as_of=AS_OF
    )
    weekly = MetricFilter(product_id=subs["E"].product_id)
    rows = selectors.mrr_movements(weekly, as_of=AS_OF)
    assert rows == selectors.mrr_movements_direct(weekly, as_of=AS_OF)
    assert [(r["new"], r["mrr_end"]) for r in rows] == [(4333, 4333)] + [(0, 4333)] * 3

    trials = selectors.trial_conversion(ALL)
    assert trials == selectors.trial_conversion_direct(ALL)
    assert trials == [
        {
            "cohort": dt.date(2027, 1, 1),
            "trials": 2,
            "converted": 1,
            "pending": 0,
            "lost": 1,
            "conversion_rate": _d("0.5"),
        }
    ]

    # Renewals billed by us (helper starts have no order: a first paid period has no ledger
    # row): Feb A1 30 + C 20 (its trial's first period) + E 3 × 10 + G 50, A1's refunded;
    # Mar F1 30 + C 20 + E 4 × 10 + G 50, C's charged back; Apr F1 30 + E 5 × 10 + I 50;
    # May A2 30 + E 2 × 10.
    collected = selectors.renewal_revenue(ALL)
    assert collected == selectors.renewal_revenue_direct(ALL)
    assert [
        (str(r["month"]), r["charged"], r["refunded"], r["charged_back"], r["net"])
        for r in collected
    ] == [
        ("2027-02-01", 13000, 3000, 0, 10000),
        ("2027-03-01", 14000, 0, 2000, 12000),
        ("2027-04-01", 13000, 0, 0, 13000),
        ("2027-05-01", 5000, 0, 0, 5000),
    ]
    march = MetricFilter(start=at(2027, 3, 1, 0), end=at(2027, 4, 1, 0))
    assert selectors.renewal_revenue(march) == selectors.renewal_revenue_direct(march)
    assert [r["net"] for r in selectors.renewal_revenue(march)] == [12000]

    plans = selectors.plan_completion(ALL)
    assert plans == selectors.plan_completion_direct(ALL)
    assert [
        (str(r["cohort"]), r["plans"], r["completed"], r["defaulted"], r["cancelled"])
        + (r["in_progress"], r["completion_rate"], r["default_rate"])
        + (r["scheduled"], r["collected"])
        for r in plans
    ] == [
        ("2027-01-01", 2, 1, 1, 0, 0, _d("0.5"), _d("0.5"), 30000, 20000),
        ("2027-03-01", 1, 0, 0, 0, 1, None, None, 15000, 10000),
    ]


def test_cohort_ltv_counts_renewals_net_of_refunds_and_chargebacks(tenant, client_for):
    """Two subscribers bought through the hosted checkout (49.00 + 19 % VAT = 58.31 a
    month). X's first renewal (day 31) is refunded 10.00 on day 36, which ends it; Y renews
    on days 31 and 59 and the second renewal is charged back on day 74."""
    from analytics.rollups import rollups_rebuild, rollups_refresh
    from subscriptions.models import Plan
    from tests.upsell.helpers import buy, make_catalog

    core, *_ = make_catalog(with_downsell=False)
    Plan.objects.create(product=core, kind="subscription", interval_unit="month", interval_count=1)
    client = client_for("t1.localhost")
    with time_machine.travel(at(2027, 1, 5, 12), tick=False) as traveller:
        buy(client, email="x@example.com")
        traveller.move_to(at(2027, 1, 5, 12) + dt.timedelta(minutes=5))
        buy(client, email="y@example.com")
        x, y = Subscription.objects.order_by("pk")
        rollups_refresh()  # the orders are folded in: what follows is queued by buyer alone
        traveller.move_to(at(2027, 2, 5, 13))
        services.renewals_run(now=at(2027, 2, 5, 13))
        traveller.move_to(at(2027, 2, 10, 12))
        entry = renewal_entry(x, 1)
        payments.refund_create(
            reference=entry.reference, line_key=entry.line_key, amount=Money(1000, "USD")
        )
        traveller.move_to(at(2027, 3, 5, 13))
        services.renewals_run(now=at(2027, 3, 5, 13))
        traveller.move_to(at(2027, 3, 20, 12))
        entry = renewal_entry(y, 2)
        payments._ledger_add(
            kind=LedgerKind.CHARGEBACK,
            gateway_ref="dp_y",
            reference=entry.reference,
            line_key=entry.line_key,
            amount=entry.amount,
            currency="USD",
        )
        dispute_lost(entry)  # decided the same day: the subscription ends
    x.refresh_from_db()
    y.refresh_from_db()
    assert (x.end_reason, y.end_reason) == ("refunded", "chargeback")
    assert (x.periods.count(), y.periods.count()) == (2, 3)

    as_of = at(2027, 6, 1, 0)
    expected = {
        "cohort": dt.date(2027, 1, 1),
        "taker": False,
        "buyers": 2,
        "ltv30": 5831,  # the checkout only: each first renewal is on day 31
        "matured30": 2,
        "ltv60": 14078,  # (5831 + 5831 − 1000 + 5831 × 3) ÷ 2 = 14077.5, half up
        "matured60": 2,
        "ltv90": 11162,  # (10662 + 17493 − 5831) ÷ 2
        "matured90": 2,
        "repeat_buyers": 0,
        "repeat_rate": _d("0"),
    }
    from analytics.models import RollupQueue

    queued = set(RollupQueue.objects.values_list("kind", "ref"))
    assert queued == {("c", x.customer_id), ("c", y.customer_id)}
    rollups_refresh()
    assert selectors.cohort_ltv_direct(ALL, as_of=as_of) == [expected]
    assert selectors.cohort_ltv(ALL, as_of=as_of) == [expected]
    rollups_rebuild()
    assert selectors.cohort_ltv(ALL, as_of=as_of) == [expected]


def test_every_interval_is_normalised_to_a_month_before_tax(tenant):
    """Rows made directly (no gateway): one buyer per subscription, each with one period that
    covers 1 July 2027, so June's closing MRR is each one's monthly value."""
    from storefront.models import Customer
    from subscriptions.models import SubscriptionPeriod
    from subscriptions.periods import period_bounds
    from tests.factories import ProductFactory

    anchor = at(2027, 6, 20)
    cases = [
        # unit, count, amount (tax included), tax, kind, expected monthly value
        ("day", 1, 100, 0, "subscription", 3042),  # 100 × 365 / 12 = 3041.67
        ("week", 2, 2000, 0, "subscription", 4333),  # 2000 × 52 / 24 = 4333.33
        ("month", 3, 9000, 0, "subscription", 3000),
        ("month", 1, 1190, 190, "subscription", 1000),  # 19 % VAT is not revenue
        ("year", 1, 6006, 0, "subscription", 501),  # 500.5, half up
        ("month", 1, 5000, 0, "instalments", 0),  # a payment plan is never MRR
    ]
    product = ProductFactory()
    for n, (unit, count, amount, tax, kind, _) in enumerate(cases):
        sub = Subscription.objects.create(
            customer=Customer.objects.create(email=f"n{n}@example.com"),
            product=product,
            kind=kind,
            interval_unit=unit,
            interval_count=count,
            instalments=3 if kind == "instalments" else None,
            amount=amount,
            tax_amount=tax,
            currency="USD",
            anchor=anchor,
        )
        # Enough periods to cover 1 July (a day's period is one day long).
        number = 0
        while True:
            starts, ends = period_bounds(anchor=anchor, unit=unit, count=count, n=number)
            SubscriptionPeriod.objects.create(
                subscription=sub,
                number=number,
                starts_at=starts,
                ends_at=ends,
                amount=amount,
                status="paid",
            )
            if ends >= at(2027, 7, 1, 0):
                break
            number += 1
    july = MetricFilter(start=at(2027, 6, 1, 0), end=at(2027, 7, 1, 0))
    rows = selectors.mrr_movements(july, as_of=at(2027, 8, 1, 0))
    assert rows == selectors.mrr_movements_direct(july, as_of=at(2027, 8, 1, 0))
    expected = sum(c[-1] for c in cases)
    assert [(r["month"], r["new"], r["mrr_end"], r["customers_end"]) for r in rows] == [
        (dt.date(2027, 6, 1), expected, expected, 5)
    ]


def dispute_lost(entry) -> None:
    """What payments.disputes does when the gateway says the dispute of `entry` is lost: the
    subscription it paid for ends (an open dispute alone keeps it running)."""
    from django.db import transaction

    from payments.models import Dispute

    lost = Dispute(
        status="lost",
        reference=entry.reference,
        lines={entry.line_key: entry.amount},
        amount=entry.amount,
        currency=entry.currency,
    )
    with transaction.atomic():
        services.on_dispute_closed(lost)
