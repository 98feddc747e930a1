"""Renewals and instalments on our own charge attempts, with a clock the tests move: the right
dates and amounts, our ledger equal to the gateway's charges, one charge per period."""

import datetime as dt

import pytest

from payments.models import AttemptStatus, ChargeAttempt
from subscriptions import services
from subscriptions.models import PeriodStatus, Subscription, SubscriptionStatus
from tests import gateway_helpers as gw
from tests.concurrency import in_threads
from tests.subscriptions.helpers import at, gateway_charges, ledger_charges, plan, start

pytestmark = pytest.mark.gateway


def run_at(when):
    return services.renewals_run(now=when)


def test_a_monthly_subscription_with_a_7_day_trial_started_on_31_january_renews_twelve_times(
    tenant,
):
    sub = start(plan(price=1500, trial_days=7), started_at=at(2027, 1, 31, 10))
    assert sub.status == SubscriptionStatus.TRIALING
    assert sub.trial_ends_at == at(2027, 2, 7, 10) and sub.next_charge_at == at(2027, 2, 7, 10)
    assert gw.payment_intents() == []  # nothing charged during the trial
    run_at(at(2027, 2, 7, 9))  # an hour before the trial ends: nothing yet
    assert ChargeAttempt.objects.count() == 0

    expected = [at(2027, 2, 7, 10)] + [
        dt.datetime(2027 + (m // 12), m % 12 + 1, 7, 10, tzinfo=dt.UTC) for m in range(2, 13)
    ]
    for due in expected:
        run_at(due + dt.timedelta(minutes=5))
        run_at(due + dt.timedelta(minutes=6))  # a second beat tick charges nothing more
    sub.refresh_from_db()
    periods = list(sub.periods.order_by("number"))
    assert [p.starts_at for p in periods] == expected
    assert [p.ends_at for p in periods] == expected[1:] + [at(2028, 2, 7, 10)]
    assert all(p.status == PeriodStatus.PAID and p.amount == 1500 for p in periods)
    assert sub.status == SubscriptionStatus.ACTIVE
    assert sub.next_charge_at == at(2028, 2, 7, 10) and sub.paid_through == at(2028, 2, 7, 10)
    ledger = ledger_charges(sub)
    assert len(ledger) == 12 and sum(a for _, a in ledger) == 12 * 1500
    assert ledger == gateway_charges(sub)


def test_started_on_31_january_without_a_trial_it_renews_on_the_last_day_of_february_then_31_march(
    tenant,
):
    sub = start(plan(price=900), started_at=at(2028, 1, 31, 8))
    assert sub.next_charge_at == at(2028, 2, 29, 8)  # leap year
    for due in (at(2028, 2, 29, 8), at(2028, 3, 31, 8), at(2028, 4, 30, 8)):
        run_at(due - dt.timedelta(seconds=1))
        run_at(due)
    sub.refresh_from_db()
    assert [p.starts_at.date() for p in sub.periods.order_by("number")] == [
        dt.date(2028, 1, 31),
        dt.date(2028, 2, 29),
        dt.date(2028, 3, 31),
        dt.date(2028, 4, 30),
    ]
    assert sub.periods.get(number=0).paid_by_order  # the checkout paid the first period
    assert len(gateway_charges(sub)) == 3 == len(ledger_charges(sub))
    assert sub.next_charge_at == at(2028, 5, 31, 8)


def test_a_three_instalment_plan_charges_three_times_and_stops(tenant):
    sub = start(plan(price=3300, instalments=3), started_at=at(2027, 5, 10), first_paid=False)
    # Not paid through a checkout here: period 0 is due now and billed by the first run.
    assert sub.next_charge_at == at(2027, 5, 10) and sub.next_period == 0
    run_at(at(2027, 5, 10, 13))
    for when in (at(2027, 6, 10, 13), at(2027, 7, 10, 13), at(2027, 8, 10, 13), at(2028, 1, 1)):
        run_at(when)
    sub.refresh_from_db()
    assert sub.status == SubscriptionStatus.COMPLETED
    assert sub.next_charge_at is None
    assert list(sub.periods.values_list("number", "status")) == [
        (0, "paid"),
        (1, "paid"),
        (2, "paid"),
    ]
    assert len(ledger_charges(sub)) == 3 == len(gateway_charges(sub))
    assert sum(a for _, a in ledger_charges(sub)) == 9900


def test_a_subscription_cancelled_at_period_end_is_not_billed_again_and_can_be_resumed_before(
    tenant,
):
    sub = start(plan(price=1000), started_at=at(2027, 3, 1))
    services.subscription_cancel_at_period_end(subscription_id=sub.pk, by="buyer")
    services.subscription_resume(subscription_id=sub.pk, by="buyer")
    run_at(at(2027, 4, 1, 13))
    services.subscription_cancel_at_period_end(subscription_id=sub.pk, by="buyer")
    run_at(at(2027, 5, 1, 13))
    sub.refresh_from_db()
    assert sub.status == SubscriptionStatus.CANCELED
    assert sub.end_reason == "canceled_at_period_end" and sub.ended_at == at(2027, 5, 1)
    assert len(gateway_charges(sub)) == 1  # April only
    with pytest.raises(services.SubscriptionRefused):
        services.subscription_resume(subscription_id=sub.pk, by="buyer")


def test_a_paused_subscription_is_not_billed_and_restarts_on_its_anchor(tenant):
    sub = start(plan(price=1000), started_at=at(2027, 1, 31))
    services.subscription_pause(subscription_id=sub.pk, by="creator")
    run_at(at(2027, 4, 1))
    assert ChargeAttempt.objects.count() == 0
    services.subscription_unpause(subscription_id=sub.pk, by="creator", now=at(2027, 4, 2))
    sub.refresh_from_db()
    assert sub.next_charge_at == at(2027, 4, 30) and sub.next_period == 3


def test_fifty_concurrent_runs_of_the_renewal_on_one_due_period_make_one_charge(
    live_tenant, stripe_api_base
):
    sub = start(plan(price=2500), started_at=at(2027, 1, 15))
    due = at(2027, 2, 15, 13)
    results, errors = in_threads(
        50, lambda: services.renewal_charge(subscription_id=sub.pk, now=due), tenant=live_tenant
    )
    assert errors == []
    attempts = list(ChargeAttempt.objects.all())
    assert len(attempts) == 1 and attempts[0].status == AttemptStatus.SUCCEEDED
    assert attempts[0].sends == 1
    assert len([pi for pi in gw.payment_intents() if pi.amount == 2500]) == 1
    sub.refresh_from_db()
    assert sub.next_period == 2 and sub.next_charge_at == at(2027, 3, 15)
    assert ledger_charges(sub) == gateway_charges(sub) and len(ledger_charges(sub)) == 1
    # Whole runs at once (two beats, retried tasks) as well: still one charge for March.
    results, errors = in_threads(
        10, lambda: services.renewals_run(now=at(2027, 3, 15, 13)).renewed, tenant=live_tenant
    )
    assert errors == []
    assert len(ledger_charges(sub)) == 2 == len(gateway_charges(sub))


def test_a_worker_killed_after_committing_the_attempt_is_charged_once_by_the_next_run(
    tenant, monkeypatch
):
    from payments import services as payments

    sub = start(plan(price=700), started_at=at(2027, 1, 15))

    class Killed(BaseException):
        pass

    def die(**kwargs):
        raise Killed

    with monkeypatch.context() as m:
        m.setattr(payments, "attempt_execute", die)
        with pytest.raises(Killed):
            services.renewal_charge(subscription_id=sub.pk, now=at(2027, 2, 15, 13))
    attempt = ChargeAttempt.objects.get()
    assert attempt.status == AttemptStatus.CREATED and gw.payment_intents() == []
    run_at(at(2027, 2, 15, 14))
    run_at(at(2027, 2, 15, 15))
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.SUCCEEDED and attempt.sends == 1
    assert len(gateway_charges(sub)) == 1 == len(ledger_charges(sub))


def test_a_renewal_that_needs_authentication_asks_the_buyer_on_session(tenant, client_for):
    from subscriptions.models import Notice

    sub = start(plan(price=1200), started_at=at(2027, 1, 10), card=gw.CARD_3DS)
    run_at(at(2027, 2, 10, 13))
    sub.refresh_from_db()
    period = sub.periods.get(number=1)
    assert period.status == PeriodStatus.ACTION and sub.status == SubscriptionStatus.PAST_DUE
    assert Notice.objects.filter(subscription=sub, kind="authenticate").count() == 1
    attempt = ChargeAttempt.objects.get()
    assert attempt.status == AttemptStatus.REQUIRES_ACTION and attempt.client_secret
    from subscriptions.notices import manage_token

    token = manage_token(customer_id=sub.customer_id, schema="t1")
    client = client_for("t1.localhost")
    page = client.get(f"/account/subscriptions/{token}/{sub.pk}/confirm/")
    assert page.status_code == 200 and attempt.client_secret in page.content.decode()
    gw.authenticate(attempt.gateway_ref, attempt.client_secret)
    answer = client.post(f"/account/subscriptions/{token}/{sub.pk}/confirm/")
    assert answer.json() == {"status": "succeeded"}
    sub.refresh_from_db()
    assert sub.status == SubscriptionStatus.ACTIVE and sub.next_period == 2
    assert ledger_charges(sub) == gateway_charges(sub) and len(ledger_charges(sub)) == 1


def test_plan_prices_give_the_first_payment_and_the_total(tenant):
    trial = plan(price=1500, trial_days=7, setup_fee=500)
    assert services.plan_price(trial, 1500) == services.PlanPrice(500, 1500, None)
    three = plan(price=3300, instalments=3)
    assert services.plan_price(three, 3300) == services.PlanPrice(3300, 3300, 9900)
    assert services.plan_price(None, 4900) == services.PlanPrice(4900, 0, 4900)
    assert Subscription.objects.count() == 0
