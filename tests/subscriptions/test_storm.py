"""Everything that can happen to one subscription at once, from many threads: its renewal
(the task and beat's run, twice each), the buyer cancelling and resuming, the creator
refunding the last renewal, and a dispute on that renewal lost at the gateway. Whatever order
they land in: no step fails on a lock (no deadlock), each period is charged at most once, what
the ledger holds is what the gateway charged and refunded, and a subscription whose renewal
was refunded or lost does not stay active."""

from __future__ import annotations

import itertools

import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError, connection

from payments.disputes import dispute_sync
from payments.models import AttemptStatus, ChargeAttempt, LedgerEntry, LedgerKind
from subscriptions import services
from subscriptions.models import PeriodStatus, SubscriptionStatus
from subscriptions.services.changes import SubscriptionRefused
from tests.concurrency import in_threads
from tests.subscriptions.helpers import at, gateway_charges, ledger_charges, plan, start

pytestmark = pytest.mark.gateway


def test_a_storm_on_one_subscription_leaves_its_money_and_state_consistent(live_tenant, disputing):
    sub = start(plan(price=2500), started_at=at(2027, 1, 15))
    assert services.renewal_charge(subscription_id=sub.pk, now=at(2027, 2, 15, 13))
    february = ChargeAttempt.objects.get(reference=sub.reference, status=AttemptStatus.SUCCEEDED)
    disputing.says("dp_feb", february, "lost")
    owner = get_user_model().objects.get(email="owner@t1.example")
    march = at(2027, 3, 15, 13)
    steps = [
        lambda: services.renewal_charge(subscription_id=sub.pk, now=march),
        lambda: services.renewal_charge(subscription_id=sub.pk, now=march),
        lambda: services.renewals_run(now=march),
        lambda: services.renewals_run(now=march),
        lambda: services.subscription_cancel_at_period_end(subscription_id=sub.pk, by="buyer"),
        lambda: services.subscription_resume(subscription_id=sub.pk, by="buyer"),
        lambda: services.subscription_refund_last(
            subscription_id=sub.pk, actor=owner, requested_by=owner.email
        ),
        lambda: services.subscription_refund_last(
            subscription_id=sub.pk, actor=owner, requested_by=owner.email
        ),
        lambda: dispute_sync(dispute_ref="dp_feb"),
        lambda: dispute_sync(dispute_ref="dp_feb"),
    ]
    turns = itertools.count()

    def step():
        try:
            return steps[next(turns) % len(steps)]()
        except SubscriptionRefused as refused:  # a refusal with its reason is an answer
            return refused

    results, errors = in_threads(len(steps), step, tenant=live_tenant)
    assert not [e for e in errors if isinstance(e, OperationalError)], errors
    assert errors == []
    connection.set_tenant(live_tenant)
    sub.refresh_from_db()
    assert ledger_charges(sub) == gateway_charges(sub)
    numbers = list(sub.periods.filter(status=PeriodStatus.PAID).values_list("number", flat=True))
    assert len(numbers) == len(set(numbers))
    charged = ChargeAttempt.objects.filter(reference=sub.reference, status=AttemptStatus.SUCCEEDED)
    assert charged.count() == len(ledger_charges(sub)) <= 2  # February, and March at most once
    refunded = LedgerEntry.objects.filter(reference=sub.reference, kind=LedgerKind.REFUND)
    taken = LedgerEntry.objects.filter(reference=sub.reference, kind=LedgerKind.CHARGEBACK)
    assert refunded.exists() or taken.exists()
    assert sub.status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING)
