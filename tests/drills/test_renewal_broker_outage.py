"""Drill: the broker is down when beat should start the renewal job. Renewals are found from
the database (each subscription's stored next charge), not from queued messages, so once the
broker is back the next beat ticks run them, and two ticks charge each period once."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.db import connection, transaction
from django.utils import timezone

from config.celery_app import app
from core.models import OutboxMessage
from core.money import Money
from core.tasks import drain_outbox
from payments.models import AttemptStatus, ChargeAttempt
from storefront.models import Customer
from subscriptions import services
from subscriptions.models import Plan, Subscription
from tests.drills.test_redis_outage import private_broker  # noqa: F401 - fixture
from tests.factories import ProductFactory

pytestmark = pytest.mark.worker
SUBSCRIPTIONS = 5


def _beat_tick():
    """What beat sends for the subscriptions-renew entry (from the public schema)."""
    connection.set_schema_to_public()
    try:
        return (
            app.tasks["core.tasks.fan_out"]
            .apply(args=("subscriptions.renew_due",), throw=True)
            .get()
        )
    finally:
        from tenants.models import Creator

        connection.set_tenant(Creator.objects.get(slug="t1"))


def test_with_the_broker_down_renewals_run_once_it_returns_and_none_twice(
    private_broker,  # noqa: F811
    stub,
    live_tenant,
):
    plan = Plan.objects.create(
        product=ProductFactory(price_amount=1100), kind="subscription", interval_unit="month"
    )
    subs = []
    for n in range(SUBSCRIPTIONS):
        customer = Customer.objects.create(email=f"outage{n}@example.com")
        with transaction.atomic():
            subs.append(
                services.subscription_start(
                    plan=plan,
                    customer_id=customer.pk,
                    order_id=None,
                    line_key="",
                    amount=Money(1100, "USD"),
                    tax_amount=0,
                    started_at=timezone.now() - dt.timedelta(days=31),
                    customer_ref=f"cus_o{n}",
                    payment_method_ref=f"pm_o{n}",
                    first_paid=True,
                )
            )
    Subscription.objects.update(next_charge_at=timezone.now() - dt.timedelta(minutes=1))

    private_broker.stop()
    with pytest.raises(Exception):  # noqa: B017 - the broker's own connection error
        _beat_tick()
    time.sleep(1.0)
    assert ChargeAttempt.objects.count() == 0 and stub.stats()["payment_intents"] == 0

    private_broker.start()  # same port: the worker reconnects by itself
    assert _beat_tick() >= 1
    assert _beat_tick() >= 1  # a second beat (or a tick right after): the job runs twice
    deadline = time.monotonic() + 30
    while ChargeAttempt.objects.filter(status=AttemptStatus.SUCCEEDED).count() < SUBSCRIPTIONS:
        assert time.monotonic() < deadline, private_broker.log.read_text(errors="replace")[-3000:]
        time.sleep(0.2)
    time.sleep(1.0)  # a duplicate would show up now
    while OutboxMessage.objects.filter(dispatched_at__isnull=True).exists():
        assert time.monotonic() < deadline
        drain_outbox()
        time.sleep(0.2)
    stats = stub.stats()
    print(
        f"renewal broker drill: {SUBSCRIPTIONS} due renewals, {stats['payment_intents']} "
        f"charge(s), keys charged twice {stats['attempt_keys_charged_twice']}"
    )
    assert stats["payment_intents"] == SUBSCRIPTIONS
    assert stats["attempt_keys_charged_twice"] == 0
    for sub in subs:
        sub.refresh_from_db()
        assert sub.next_period == 2 and sub.periods.filter(status="paid").count() == 2
