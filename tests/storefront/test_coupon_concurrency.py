"""Coupon limits under concurrency: the database, not a Python check, decides who gets a use."""

import itertools

import pytest
from django.db import connection, transaction
from django.test import Client

from core.money import Money
from offers.coupons import CouponRefused, coupon_redeem
from offers.models import Coupon, CouponCustomerUse, CouponRedemption
from storefront.models import Customer, Order
from tests.catalog import catalog
from tests.concurrency import in_threads
from tests.factories import CouponFactory

pytestmark = pytest.mark.gateway

HOST = "t1.localhost"
BUYERS = 50


def test_fifty_concurrent_checkouts_with_ten_uses_left_give_it_to_exactly_ten_orders(
    live_tenant, stripe_api_base
):
    catalog()
    coupon = CouponFactory(code="LAST10", max_redemptions=25, times_redeemed=15)
    numbers = itertools.count(1)

    def start():
        n = next(numbers)
        client = Client(HTTP_HOST=HOST, REMOTE_ADDR=f"203.0.113.{n}")
        response = client.post(
            "/checkout/course/start",
            {"email": f"buyer{n}@example.com", "country": "DE", "coupon": "LAST10"},
        )
        return response.status_code, response.json()

    answers, errors = in_threads(BUYERS, start)

    assert errors == [] and len(answers) == BUYERS
    won = [body for status, body in answers if status == 200]
    lost = [body for status, body in answers if status != 200]
    assert len(won) == 10
    assert {status for status, _ in answers} == {200, 400}
    assert {body["fields"]["coupon"] for body in lost} <= {
        "The coupon LAST10 has just been used up.",
        "The coupon LAST10 has been used up.",
    }
    assert Coupon.objects.get(pk=coupon.pk).times_redeemed == 25
    assert CouponRedemption.objects.filter(coupon=coupon).count() == 10
    orders = Order.objects.filter(coupon_code="LAST10")
    assert orders.count() == 10 == Order.objects.count()
    assert {o.token for o in orders} == {body["order"] for body in won}
    # The losers left nothing: no order, no buyer, no per-buyer count.
    assert Customer.objects.count() == 10 == CouponCustomerUse.objects.count()


def test_concurrent_redemptions_by_one_buyer_stop_at_the_per_buyer_limit(live_tenant):
    catalog(bump=False)
    coupon = CouponFactory(code="TWICE", max_per_customer=2, max_redemptions=None)
    buyer = Customer.objects.create(email="same@example.com")
    orders = [
        Order.objects.create(token=f"tok{i}", customer=buyer, currency="USD", country="DE")
        for i in range(12)
    ]
    slots = iter(orders)

    def redeem():
        order = next(slots)
        connection.set_tenant(live_tenant)
        try:
            with transaction.atomic():
                coupon_redeem(
                    coupon=coupon, order_id=order.pk, customer_id=buyer.pk, amount=Money(980, "USD")
                )
            return "ok"
        except CouponRefused as exc:
            return exc.code

    results, errors = in_threads(len(orders), redeem)

    assert errors == []
    assert sorted(results) == ["ok"] * 2 + ["per_customer"] * 10
    assert CouponCustomerUse.objects.get(coupon=coupon, customer=buyer).uses == 2
    # Each refused redemption rolled back its own coupon count with it.
    assert Coupon.objects.get(pk=coupon.pk).times_redeemed == 2
    assert CouponRedemption.objects.filter(coupon=coupon).count() == 2
