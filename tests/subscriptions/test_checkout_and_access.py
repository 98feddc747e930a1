"""Subscriptions bought through the hosted pages: a subscription as the core product, a monthly
community as the bump, "upgrade to annual" as the one-click upsell; and access to a
subscription's deliverables following its state."""

import datetime as dt

import pytest
from django.urls import reverse

from core.money import Money
from payments.models import ChargeAttempt, LedgerEntry
from storefront.services import delivery, refunds
from subscriptions import services
from subscriptions.models import Plan, Subscription, SubscriptionStatus
from tests import gateway_helpers as gw
from tests.subscriptions.helpers import gateway_charges, ledger_charges
from tests.upsell.helpers import buy, make_catalog, offer_token

pytestmark = pytest.mark.gateway
HOST = "t1.localhost"
VAT = 19


def monthly(product, **kw):
    return Plan.objects.create(
        product=product, kind="subscription", interval_unit="month", interval_count=1, **kw
    )


def test_a_subscription_bought_at_checkout_is_paid_by_the_order_then_renews_on_the_vaulted_card(
    tenant, client_for
):
    core, bump, _, _ = make_catalog(with_downsell=False)
    monthly(core)
    order = buy(client_for(HOST))
    sub = Subscription.objects.get()
    assert sub.order_id == order.pk and sub.line_key == order.lines.get(kind="core").line_key
    assert (sub.amount, sub.tax_amount, sub.currency) == (5831, 931, "USD")  # 49.00 + 19 % VAT
    assert sub.status == SubscriptionStatus.ACTIVE and sub.periods.get(number=0).paid_by_order
    from subscriptions.periods import add_months

    assert sub.next_charge_at == add_months(order.paid_at.astimezone(dt.UTC), 1)
    services.renewals_run(now=sub.next_charge_at)
    sub.refresh_from_db()
    assert sub.next_period == 2 and len(gateway_charges(sub)) == 1
    assert ledger_charges(sub) == gateway_charges(sub) and gateway_charges(sub)[0][1] == 5831


def test_a_setup_fee_is_part_of_the_first_payment_only(tenant, client_for):
    core, *_ = make_catalog(with_downsell=False)
    monthly(core, setup_fee_amount=1000)
    order = buy(client_for(HOST))
    assert order.lines.get(kind="core").total_amount == 5831 + 1190
    sub = Subscription.objects.get()
    assert sub.amount == 5831


def test_a_trial_with_a_setup_fee_charges_the_fee_now_and_the_first_period_when_it_ends(
    tenant, client_for
):
    core, *_ = make_catalog(with_downsell=False)
    monthly(core, trial_days=7, setup_fee_amount=500)
    order = buy(client_for(HOST))
    assert order.lines.get(kind="core").total_amount == 595
    sub = Subscription.objects.get()
    assert sub.status == SubscriptionStatus.TRIALING
    assert sub.next_charge_at == order.paid_at + dt.timedelta(days=7)
    services.renewals_run(now=sub.next_charge_at)
    sub.refresh_from_db()
    assert sub.status == SubscriptionStatus.ACTIVE and gateway_charges(sub)[0][1] == 5831


def test_the_monthly_community_as_a_bump_starts_its_own_subscription(tenant, client_for):
    core, bump, _, _ = make_catalog(with_downsell=False)
    monthly(bump.product)
    order = buy(client_for(HOST), bump=bump.pk)
    sub = Subscription.objects.get()
    assert sub.product_id == bump.product_id and sub.amount == 900 + 171  # the bump's price
    assert sub.line_key == order.lines.get(kind="bump").line_key
    assert len(gw.payment_intents()) == 1  # core + bump in the one checkout payment


def test_upgrade_to_annual_accepted_with_one_click_charges_once_and_ends_the_monthly(
    tenant, client_for
):
    core, _, upsell_offer, _ = make_catalog(with_downsell=False)
    monthly(core)
    Plan.objects.create(
        product=upsell_offer.product, kind="subscription", interval_unit="year", interval_count=1
    )
    client = client_for(HOST)
    order = buy(client)
    month = Subscription.objects.get()
    token = offer_token(client, order)
    assert client.post(f"/o/{order.token}/offer/accept", {"token": token}).status_code == 303
    assert client.post(f"/o/{order.token}/offer/accept", {"token": token}).status_code == 409
    upsell_intents = [
        pi for pi in gw.payment_intents() if pi.metadata["purpose"] == f"order:{order.pk}:upsell"
    ]
    assert len(upsell_intents) == 1 and upsell_intents[0].amount == 1200 + 228
    year = Subscription.objects.exclude(pk=month.pk).get()
    month.refresh_from_db()
    assert year.replaces_id == month.pk and year.interval_unit == "year"
    assert year.status == SubscriptionStatus.ACTIVE and year.amount == 1428
    assert month.status == SubscriptionStatus.CANCELED and month.end_reason == "upgraded"
    # The monthly is never billed again; the annual renews a year on.
    services.renewals_run(now=order.paid_at + dt.timedelta(days=40))
    assert ChargeAttempt.objects.filter(reference=month.reference).count() == 0
    assert year.next_charge_at.date() == (year.anchor.replace(year=year.anchor.year + 1)).date()


def _download(client, order):
    line = order.lines.get(kind="core")
    return client.get(
        reverse("line-download", args=[delivery.download_token(line=line, schema="t1")])
    )


def test_access_follows_the_subscription_cancel_refund_and_dispute(tenant, client_for):
    core, *_ = make_catalog(with_downsell=False)
    monthly(core)
    client = client_for(HOST)
    order = buy(client)
    sub = Subscription.objects.get()
    assert _download(client, order).status_code == 302
    # Past due is the grace period: still available.
    Subscription.objects.filter(pk=sub.pk).update(status=SubscriptionStatus.PAST_DUE)
    assert _download(client, order).status_code == 302
    Subscription.objects.filter(pk=sub.pk).update(status=SubscriptionStatus.ACTIVE)
    # A renewal refunded by the creator ends the subscription and the access.
    services.renewals_run(now=sub.next_charge_at)
    entry = LedgerEntry.objects.get(reference=sub.reference)
    from payments import services as payments

    payments.refund_create(
        reference=sub.reference, line_key=entry.line_key, amount=Money(entry.amount, "USD")
    )
    sub.refresh_from_db()
    assert sub.status == SubscriptionStatus.CANCELED and sub.end_reason == "refunded"
    response = _download(client, order)
    assert response.status_code == 403 and "subscription has ended" in response.content.decode()


def test_a_refund_of_the_order_line_that_started_it_ends_it(tenant, client_for):
    core, *_ = make_catalog(with_downsell=False)
    monthly(core)
    order = buy(client_for(HOST))
    line = order.lines.get(kind="core")
    from django.contrib.auth import get_user_model

    owner = get_user_model().objects.get(email="owner@t1.example")
    refunds.order_line_refund(
        order=order,
        line=line,
        amount=None,
        reason="cancelled in the first week",
        actor=owner,
        requested_by=owner.email,
        idempotency_key="refund-sub-core",
    )
    sub = Subscription.objects.get()
    assert sub.status == SubscriptionStatus.CANCELED and sub.end_reason == "refunded"
    services.renewals_run(now=order.paid_at + dt.timedelta(days=40))
    assert ChargeAttempt.objects.filter(reference=sub.reference).count() == 0


def test_a_dispute_on_a_renewal_ends_it_only_when_lost(tenant, client_for):
    """Through the local Stripe's disputes and the real SDK: an open dispute withdraws the
    renewal's money (ledger) but the subscription runs on; the bank's loss cancels it."""
    from payments.disputes import dispute_sync
    from payments.models import Dispute, LedgerKind

    core, *_ = make_catalog(with_downsell=False)
    monthly(core)
    buy(client_for(HOST))
    sub = Subscription.objects.get()
    services.renewals_run(now=sub.next_charge_at)
    entry = LedgerEntry.objects.get(reference=sub.reference)
    dispute_ref = gw.dispute_open(entry.gateway_ref)
    assert dispute_sync(dispute_ref=dispute_ref)
    sub.refresh_from_db()
    assert sub.status == SubscriptionStatus.ACTIVE
    assert LedgerEntry.objects.get(kind=LedgerKind.CHARGEBACK).amount == entry.amount
    gw.dispute_decide(dispute_ref, "lost")
    dispute_sync(dispute_ref=dispute_ref)
    dispute_sync(dispute_ref=dispute_ref)  # a replay
    sub.refresh_from_db()
    assert sub.status == SubscriptionStatus.CANCELED and sub.end_reason == "chargeback"
    assert Dispute.objects.get().status == "lost"
    assert LedgerEntry.objects.filter(kind=LedgerKind.CHARGEBACK).count() == 1


def test_a_failure_starting_the_subscription_never_undoes_the_recorded_payment(
    tenant, client_for, monkeypatch
):
    from subscriptions import services as subscription_services

    def broken(**kwargs):
        raise RuntimeError("subscriptions are broken today")

    core, *_ = make_catalog(with_downsell=False)
    monthly(core)
    monkeypatch.setattr(subscription_services, "subscription_start", broken)
    order = buy(client_for(HOST))  # asserts the order is paid
    assert Subscription.objects.count() == 0
    assert LedgerEntry.objects.filter(reference=order.reference, kind="charge").count() == 1


def test_the_plan_cache_follows_plan_changes(tenant):
    from subscriptions.services import plan_for
    from tests.factories import ProductFactory

    product = ProductFactory()
    assert plan_for(product.pk) is None
    plan = monthly(product)
    assert plan_for(product.pk).pk == plan.pk
    plan.interval_unit = "year"
    plan.save()
    assert plan_for(product.pk).interval_unit == "year"
    plan.delete()
    assert plan_for(product.pk) is None
