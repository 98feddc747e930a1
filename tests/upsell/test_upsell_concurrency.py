"""Exactly once under concurrency: many accepts at once, over separate database connections."""

import datetime as dt
import itertools
import threading

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.test import Client
from django.utils import timezone

from offers.models import Offer, OfferDecision
from payments.models import ChargeAttempt, LedgerEntry
from storefront.models import Customer, Order
from storefront.services import upsell
from tests import gateway_helpers as gw
from tests.concurrency import in_threads
from tests.upsell.helpers import buy, make_catalog, offer_token

pytestmark = pytest.mark.gateway

HOST = "t1.localhost"
ACCEPTS = 50


def test_fifty_concurrent_accepts_make_one_payment_intent_and_one_upsell_line(
    live_tenant, stripe_api_base
):
    make_catalog()
    client = Client(HTTP_HOST=HOST)
    order = buy(client)
    token = offer_token(client, order)
    url = f"/o/{order.token}/offer/accept"

    addresses = itertools.count(1)

    def accept():
        # Each thread: its own client, DB connection and address (the per-address rate limit
        # is a separate guard; this test is about the charge under concurrency).
        n = next(addresses)
        c = Client(HTTP_HOST=HOST, REMOTE_ADDR=f"203.0.113.{n}")
        c.cookies = client.cookies
        return c.post(url, {"token": token}).status_code

    statuses, errors = in_threads(ACCEPTS, accept)

    assert errors == [] and len(statuses) == ACCEPTS
    assert sorted(set(statuses)) == [303, 409] and statuses.count(303) == 1
    upsell_intents = [
        i
        for i in gw.payment_intents()
        if i.metadata.to_dict().get("purpose") == f"order:{order.pk}:upsell"
    ]
    assert [(i.status, i.amount) for i in upsell_intents] == [("succeeded", 1428)]
    assert Order.objects.get(pk=order.pk).lines.filter(kind="upsell").count() == 1
    assert ChargeAttempt.objects.filter(purpose=f"order:{order.pk}:upsell").get().sends == 1
    assert LedgerEntry.objects.filter(line_key=f"upsell:{order.pk}").count() == 1


def test_concurrent_releases_of_one_queued_accept_send_it_once(live_tenant, stripe_api_base):
    """The task delivered many times at once (retries, the webhook and reconciliation racing)."""
    make_catalog()
    client = Client(HTTP_HOST=HOST)
    order = buy(client)
    token = offer_token(client, order)
    # Accept with the gate shut (as if the primary were still processing), then open it.
    primary = ChargeAttempt.objects.get(purpose=f"order:{order.pk}:primary")
    ChargeAttempt.objects.filter(pk=primary.pk).update(status="processing")
    assert client.post(f"/o/{order.token}/offer/accept", {"token": token}).status_code == 303
    assert ChargeAttempt.objects.get(purpose=f"order:{order.pk}:upsell").status == "created"
    ChargeAttempt.objects.filter(pk=primary.pk).update(status="succeeded")

    def release():
        connection.set_tenant(live_tenant)
        upsell.release_gated_offers(order_id=order.pk)

    _, errors = in_threads(10, release)
    assert errors == []
    upsell_intents = [
        i
        for i in gw.payment_intents()
        if i.metadata.to_dict().get("purpose") == f"order:{order.pk}:upsell"
    ]
    assert len(upsell_intents) == 1
    assert Order.objects.get(pk=order.pk).lines.filter(kind="upsell").count() == 1


def test_the_customer_cap_holds_for_two_orders_presented_at_the_same_moment(
    live_tenant, stripe_api_base
):
    """One buyer, two orders, both offer pages opened at once: only one upsell is shown."""
    make_catalog()
    client = Client(HTTP_HOST=HOST)
    first = buy(client)
    second = buy(client)

    def show(order):
        return lambda: Client(HTTP_HOST=HOST).get(f"/o/{order.token}/offer").status_code

    orders = [first, second] * 5
    barrier_fns = iter(orders)
    lock = threading.Lock()

    def next_show():
        with lock:
            order = next(barrier_fns)
        return show(order)()

    statuses, errors = in_threads(len(orders), next_show)
    assert errors == []
    assert OfferDecision.objects.filter(customer__email="buyer@example.com").count() == 1
    assert set(statuses) <= {200, 302}


def test_the_database_refuses_a_second_upsell_for_a_customer_inside_the_window(tenant):
    make_catalog()
    customer = Customer.objects.create(email="cap@example.com")
    offer = Offer.objects.get(kind="upsell")
    orders = [
        Order.objects.create(token=f"tok{i}", customer=customer, currency="USD", country="DE")
        for i in range(2)
    ]
    now = timezone.now()

    def decision(order, start):
        return OfferDecision.objects.create(
            order=order,
            customer=customer,
            offer=offer,
            kind="upsell",
            nonce=f"n{order.pk}",
            expires_at=now,
            cap_window=DateTimeTZRange(start, start + dt.timedelta(hours=24)),
            net_amount=1,
            tax_amount=0,
            total_amount=1,
            currency="USD",
            tax_rate=0,
            tax_inclusive=False,
        )

    decision(orders[0], now)
    with pytest.raises(IntegrityError), transaction.atomic():
        decision(orders[1], now + dt.timedelta(hours=23))
    decision(orders[1], now + dt.timedelta(hours=24))  # the window has passed: allowed
    assert OfferDecision.objects.filter(customer=customer).count() == 2
