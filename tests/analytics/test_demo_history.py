"""The demo's history (storefront/demo_history.py), seeded over a short span into a committed
store: every figure of the dashboard equals its `*_direct` oracle on it, the story it tells
is there (a finished experiment, a paused offer, refunds, follow-up takers, transfers), and
seeding again adds nothing."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core import mail
from django.test import Client

from analytics import selectors
from analytics.models import Event, Experiment, ExperimentStatus
from analytics.selectors import DIRECT, MetricFilter
from core import orderkeys
from core.models import OutboxMessage
from offers.models import Offer
from payments.models import (
    ChargeAttempt,
    LedgerEntry,
    PayoutAccount,
    PayoutEntry,
    Refund,
    TransferAttempt,
)
from storefront.demo_history import demo_history_seed
from storefront.management.commands.seed_demo import Command
from storefront.models import FollowUpSend, Invoice, Order, OrderLine
from subscriptions.models import PeriodStatus, Subscription, SubscriptionPeriod
from tests.analytics.workload import assert_figures_equal_their_oracles

pytestmark = pytest.mark.slow

DAYS = 9  # the whole story, shortened: experiment on days 2–5, the pause on day 6


def _counts() -> dict[str, int]:
    return {
        "orders": Order.objects.count(),
        "lines": OrderLine.objects.count(),
        "attempts": ChargeAttempt.objects.count(),
        "ledger": LedgerEntry.objects.count(),
        "refunds": Refund.objects.count(),
        "events": Event.objects.count(),
        "followups": FollowUpSend.objects.count(),
        "experiments": Experiment.objects.count(),
        "offers": Offer.objects.count(),
        "subscriptions": Subscription.objects.count(),
        "periods": SubscriptionPeriod.objects.count(),
    }


def demo_catalog_connected(*, account: str) -> None:
    """The demo's catalog on t1, connected as the demo is: each settled charge is transferred
    to the creator (so a refund takes the creator's share back)."""
    Command(stdout=io.StringIO()).catalog("t1.localhost")
    PayoutAccount.objects.create(
        idempotency_key=f"{account}-key",
        account_ref=account,
        charges_enabled=True,
        payouts_enabled=True,
        details_submitted=True,
    )


@pytest.fixture(scope="module")
def seeded(django_db_setup, django_db_blocker):
    """Seeded once for the module, committed in t1 (as live_tenant does, then undone)."""
    from django.db import connection

    from analytics import pageviews
    from tests.conftest import TENANTS, _creator, _max_user_id, committed_data_clear

    with django_db_blocker.unblock():
        users_before = {slug: _max_user_id(slug) for slug in TENANTS}
        connection.set_tenant(_creator("t1"))
        try:
            pageviews.local_state_clear()
            demo_catalog_connected(account="acct_demotest")
            lines: list[str] = []
            mail.outbox = []
            result = demo_history_seed(days=DAYS, progress=lines.append)
            result.sent = list(mail.outbox)  # what the seed's own outbox in memory holds
            assert result.days_seeded == DAYS and not result.skipped
            assert lines and lines[-1].startswith(f"  history: day {DAYS}/{DAYS}")
            yield result
        finally:
            committed_data_clear(users_before)
            pageviews.local_state_clear()


@pytest.fixture
def in_t1(seeded):
    from django.db import connection

    from tests.conftest import _creator

    connection.set_tenant(_creator("t1"))
    return seeded


def _filters(result) -> list[MetricFilter]:
    offers = list(Offer.objects.values_list("pk", flat=True))
    sources = ["instagram", "newsletter", "ads", ""]  # "": direct traffic
    first = Order.objects.order_by("created_at").first().created_at
    return [
        MetricFilter(),
        *[MetricFilter(source=s) for s in sources],
        *[MetricFilter(offer_id=o) for o in offers],
        MetricFilter(start=first.replace(hour=0, minute=0) + dt.timedelta(days=4)),
    ]


def _figures_equal_their_oracles(seeded) -> None:
    for f in _filters(seeded):
        assert_figures_equal_their_oracles(f)
        assert selectors.mrr_movements(f) == selectors.mrr_movements_direct(f), f
        assert selectors.trial_conversion(f) == selectors.trial_conversion_direct(f), f
        assert selectors.renewal_revenue(f) == selectors.renewal_revenue_direct(f), f


def test_every_dashboard_figure_equals_its_direct_oracle_on_the_seeded_demo(in_t1):
    seeded = in_t1
    assert seeded.orders >= 10
    _figures_equal_their_oracles(seeded)

    # The dashboard page itself shows those figures (it reads the read models).
    owner = Client(HTTP_HOST="t1.localhost")
    assert owner.login(username="owner", password="owner-pass-123")
    page = owner.get("/admin/analytics/dashboard/")
    assert page.status_code == 200
    data, f = page.context["data"], MetricFilter()
    assert data["funnel"] == selectors.funnel_direct(f)
    assert data["traffic"] == [selectors.traffic_direct(f)]
    assert data["order_value"] == selectors.order_value_direct(f)
    assert data["take_rates_offer"] == selectors.take_rates_direct(f, by="offer")
    assert data["take_rates_source"] == selectors.take_rates_direct(f, by="source")
    assert data["refunds"] == selectors.refund_rates_direct(f, by="offer")
    assert data["refunds_kind"] == selectors.refund_rates_direct(f, by="kind")
    assert data["cohorts"] == selectors.cohort_ltv_direct(f)
    # Not an empty store: page views, several sources, every kind of line.
    [value] = data["order_value"]
    assert value["orders"] == seeded.orders and value["visitors"] > 4 * seeded.orders
    assert {r["source"] for r in data["take_rates_source"]} >= {"instagram", DIRECT}


def test_the_seeded_demo_tells_the_story_through_the_real_services(in_t1):
    experiment = Experiment.objects.get()
    assert experiment.status == ExperimentStatus.STOPPED
    assert experiment.started_at < experiment.stopped_at
    paused = Offer.objects.get(status=Offer.Status.PAUSED)
    assert paused.allow_high_price and paused.paused_reason
    kinds = set(OrderLine.objects.values_list("kind", flat=True))
    assert {"core", "bump", "upsell"} <= kinds
    assert Refund.objects.filter(status="succeeded").exists()
    assert Event.objects.filter(name="email_sent").exists()
    # History, not today: orders spread over the days, each charge's ledger row with it.
    days = {o.created_at.date() for o in Order.objects.all()}
    assert len(days) >= DAYS - 2
    for attempt in ChargeAttempt.objects.filter(status="succeeded"):
        entry = LedgerEntry.objects.filter(gateway_ref=attempt.gateway_ref, kind="charge").first()
        assert entry is not None and abs((entry.created_at - attempt.created_at).days) <= 1
    # Nothing is left for the workers: every task ran while seeding.
    assert not OutboxMessage.objects.filter(schema_name="t1", dispatched_at__isnull=True).exists()
    charges = ChargeAttempt.objects.filter(status="succeeded").count()
    assert TransferAttempt.objects.filter(status="succeeded").count() == charges
    assert not TransferAttempt.objects.exclude(status="succeeded").exists()
    assert PayoutEntry.objects.count() >= charges  # the payout ledger has each transfer


def test_the_seeded_demos_receipts_are_sent_with_their_invoices_issued_but_no_pdf_drawn(in_t1):
    """The history's receipts go to an outbox in memory that nobody reads: the invoices are
    issued and marked emailed as for any order, but no PDF is drawn for them (the order
    page draws one when asked). Drawing them was most of the seed's time."""
    receipts = [m for m in in_t1.sent if m.to and m.to[0].endswith("@buyers.demo.example")]
    paid = Order.objects.filter(paid_at__isnull=False, receipt_sent_at__isnull=False)
    assert len(receipts) >= paid.count() >= 20
    assert [m.attachments for m in receipts if m.attachments] == []
    invoices = Invoice.objects.filter(order__in=paid)
    assert invoices.count() >= paid.count()
    assert not invoices.filter(emailed_at__isnull=True).exists()


def test_the_seeded_demo_has_members_billed_by_the_renewal_job(in_t1):
    """The membership's story: trials started through the hosted checkout's card-only path,
    the first charge at the trial's end made by the renewal job (not by the order), and
    nothing due left unbilled at the last morning. (Nine days are too few to count on a
    cancellation: `members()` draws them per subscription and period.)"""
    subs = Subscription.objects.filter(product__slug="photo-club")
    assert subs.count() >= 3
    assert all(sub.order_id and sub.trial_ends_at for sub in subs)
    billed = SubscriptionPeriod.objects.filter(
        subscription__in=subs, paid_by_order=False, status=PeriodStatus.PAID
    )
    assert billed.exists()
    for period in billed:
        purpose = orderkeys.subscription_purpose(
            period.subscription_id, period.number, period.tries
        )
        attempt = ChargeAttempt.objects.get(purpose=purpose)
        assert attempt.status == "succeeded" and attempt.demo and attempt.off_session
        assert LedgerEntry.objects.filter(gateway_ref=attempt.gateway_ref, kind="charge").exists()
    last_morning = max(o.created_at for o in Order.objects.all()).replace(hour=6, minute=0)
    assert not subs.filter(
        status__in=("trialing", "active"),
        next_charge_at__lt=last_morning,
        cancel_at_period_end=False,
    ).exists()


def test_seeding_the_demo_again_adds_nothing(in_t1):
    before = _counts()
    again = demo_history_seed(days=DAYS, progress=lambda line: None)
    assert again.skipped and again.orders == 0
    assert _counts() == before


def test_every_seeded_payment_is_demo_data_and_a_second_run_marks_what_an_older_seed_left(
    in_t1,
):
    paid = ChargeAttempt.objects.filter(status="succeeded")
    assert paid.exists() and not paid.filter(demo=False).exists()
    assert all(ref.startswith("pi_demo") for ref in paid.values_list("gateway_ref", flat=True))
    # A store seeded before the mark existed: the next start marks its history.
    older = list(paid.order_by("pk").values_list("pk", flat=True)[:3])
    ChargeAttempt.objects.filter(pk__in=older).update(demo=False)
    assert demo_history_seed(days=DAYS, progress=lambda line: None).skipped
    assert not paid.filter(demo=False).exists()


class _NoGateway:
    """Any call to the payment gateway fails the test: the seeded history has none."""

    def __getattr__(self, name):
        raise AssertionError(f"the gateway was called ({name}) for demo data")


def test_a_seeded_order_refunded_from_the_admin_is_refunded_and_counted_without_a_gateway(
    in_t1,
):
    from payments import gateway as gateway_module
    from payments.models import ReversalStatus, TransferReversal
    from payments.transfers import reverse_for_cause

    seeded = in_t1
    refunded = set(Refund.objects.values_list("reference", flat=True))
    order = (
        Order.objects.filter(status="paid", lines__kind="bump")
        .exclude(pk__in=[int(r.split(":")[1]) for r in refunded])
        .order_by("pk")
        .first()
    )
    assert order is not None
    assert ChargeAttempt.objects.filter(reference=order.reference, demo=True).exists()
    assert not ChargeAttempt.objects.filter(demo=False, status="succeeded").exists()
    net_before = {r["currency"]: r["net"] for r in selectors.order_value_direct(MetricFilter())}

    owner = Client(HTTP_HOST="t1.localhost")
    assert owner.login(username="owner", password="owner-pass-123")
    page = owner.get(f"/admin/storefront/order/{order.pk}/change/").content.decode()
    assert "Demo data: seeded history" in page
    changelist = "/admin/storefront/order/"
    picked = {"action": "refund_in_full", "_selected_action": [order.pk], "index": 0}
    key = owner.post(changelist, picked).context["form"]["refund_key"].value()
    gateway_module.use_gateway(_NoGateway())
    try:
        done = owner.post(
            changelist,
            {**picked, "apply": "Yes", "refund_key": key, "reason": "changed my mind"},
            follow=True,
        )
    finally:
        gateway_module.use_gateway(None)
    told = [str(m) for m in done.context["messages"]]
    assert told and all("demo data: no gateway call" in m for m in told), told

    rows = list(Refund.objects.filter(reference=order.reference))
    assert len(rows) == order.lines.count() >= 2
    assert all(r.status == "succeeded" and "_demo_" in r.gateway_ref for r in rows)
    order.refresh_from_db()
    assert order.status == "refunded"
    total = sum(r.amount for r in rows)
    assert total == sum(line.total_amount for line in order.lines.all())
    # The creator's share is taken back from the seeded transfer, also without a gateway
    # (the task the refund queued, run here as a worker would).
    gateway_module.use_gateway(_NoGateway())
    try:
        for row in rows:
            reverse_for_cause(kind="refund", gateway_ref=row.gateway_ref)
    finally:
        gateway_module.use_gateway(None)
    reversals = TransferReversal.objects.filter(transfer__charge_attempt__reference=order.reference)
    assert reversals.exists()
    assert set(reversals.values_list("status", flat=True)) == {ReversalStatus.SUCCEEDED}

    # The figures moved by exactly the refund, and equal their oracles: on the dashboard,
    # on the home (each page brings the read models current first) and in every selector.
    net_after = {r["currency"]: r["net"] for r in selectors.order_value_direct(MetricFilter())}
    assert net_after[order.currency] == net_before[order.currency] - total
    dashboard = owner.get("/admin/analytics/dashboard/").context["data"]
    assert dashboard["order_value"] == selectors.order_value_direct(MetricFilter())
    assert dashboard["refunds"] == selectors.refund_rates_direct(MetricFilter(), by="offer")
    assert dashboard["refunds_kind"] == selectors.refund_rates_direct(MetricFilter(), by="kind")
    assert dashboard["cohorts"] == selectors.cohort_ltv_direct(MetricFilter())
    _figures_equal_their_oracles(seeded)
    home = owner.get("/admin/").context
    # Nothing for the creator to chase: no refused take-back, no mismatch.
    assert {a.key for a in home["attention"]} <= {"paused_offers"}, home["attention"]
    for figures in home["sales"]:
        p = figures["period"]
        for start, end, key in (
            (p.start, p.end, "net"),
            (p.compare_start, p.compare_end, "previous_net"),
        ):
            direct = {
                r["currency"]: r["net"]
                for r in selectors.order_value_direct(MetricFilter(start=start, end=end))
            }
            for row in figures["rows"]:
                assert row[key] == direct.get(row["currency"], 0), (p, key)
