"""Drill: the worker running the renewal job is SIGKILLed while the renewal's charge is at the
gateway (the gateway made the payment; its answer never reached us). Reconciliation finds the
payment by the attempt's key, and later runs of the job charge nothing more: one charge."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time

import pytest
from django.db import transaction
from django.utils import timezone

from config.celery_app import app
from core.money import Money
from payments.models import AttemptStatus, ChargeAttempt
from payments.reconciliation import attempt_reconcile
from storefront.models import Customer
from subscriptions import services
from subscriptions.models import PeriodStatus, Plan, Subscription, SubscriptionStatus
from tests.drills.test_worker_killed import _children, prefork_worker  # noqa: F401 - fixture
from tests.factories import ProductFactory
from tests.worker_support import wait_for

pytestmark = pytest.mark.worker


def test_a_worker_killed_mid_renewal_leaves_one_charge_after_reconciliation(
    prefork_worker,  # noqa: F811
    stub,
    live_tenant,
):
    log = prefork_worker.log_path
    product = ProductFactory(price_amount=2900)
    plan = Plan.objects.create(product=product, kind="subscription", interval_unit="month")
    customer = Customer.objects.create(email="drill-sub@example.com")
    with transaction.atomic():
        sub = services.subscription_start(
            plan=plan,
            customer_id=customer.pk,
            order_id=None,
            line_key="",
            amount=Money(2900, "USD"),
            tax_amount=0,
            started_at=timezone.now() - dt.timedelta(days=31),
            customer_ref="cus_drill",
            payment_method_ref="pm_drill",
            first_paid=True,
        )
    Subscription.objects.filter(pk=sub.pk).update(next_charge_at=timezone.now())
    stub.charge_delay = 5.0  # the payment is made at once; its answer would come in 5 s
    sent = time.monotonic()

    app.tasks["subscriptions.renew_due"].delay()
    wait_for(
        lambda: (
            ChargeAttempt.objects.filter(status=AttemptStatus.IN_FLIGHT).exists()
            and len(stub.state.intents) == 1
        ),
        "the renewal to be at the gateway",
        log,
    )
    (child,) = _children(prefork_worker.pid)
    os.kill(child, signal.SIGKILL)
    wait_for(lambda: child not in _children(prefork_worker.pid), "the child to die", log)
    stub.charge_delay = 0.0

    attempt = ChargeAttempt.objects.get()
    assert attempt.status == AttemptStatus.IN_FLIGHT and not attempt.gateway_ref
    # The next beat tick: the renewal job sees the period being charged and sends nothing.
    services.renewals_run()
    assert len(stub.state.intents) == 1
    # Reconciliation re-reads the attempt by its key and records the payment the gateway made.
    attempt_reconcile(attempt_id=attempt.pk, resend_after=dt.timedelta(minutes=5))
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.SUCCEEDED and attempt.sends == 1
    for _ in range(3):
        services.renewals_run()
    time.sleep(max(0.5, 5.5 - (time.monotonic() - sent)))  # the stub's late answer is done
    sub.refresh_from_db()
    period = sub.periods.get(number=1)
    intents = [
        i
        for i in stub.state.intents.values()
        if i["metadata"].get("attempt") == attempt.idempotency_key
    ]
    print(
        f"renewal drill: SIGKILLed the pool child mid-charge; {len(stub.state.intents)} "
        f"charge(s) at the gateway, {len(intents)} for the renewal's key"
    )
    assert len(stub.state.intents) == 1 and len(intents) == 1
    assert period.status == PeriodStatus.PAID and sub.status == SubscriptionStatus.ACTIVE
    assert sub.next_period == 2 and ChargeAttempt.objects.count() == 1
