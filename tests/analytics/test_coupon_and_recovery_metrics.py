"""The dashboard's coupon and recovery figures, from orders made through the real checkout:
equal to what the ledger holds (revenue net of discounts and refunds) and to the orders."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from analytics.selectors import MetricFilter
from analytics.selectors.conversion import coupon_performance, recovery_performance
from core.money import Money
from payments.models import LedgerEntry
from storefront.models import FollowUpSend, Order
from storefront.services import followups
from storefront.services.followups import recovery
from storefront.services.refunds import order_line_refund, order_refund_all
from tests import gateway_helpers as gw
from tests.catalog import catalog
from tests.factories import CouponFactory

pytestmark = pytest.mark.gateway

HOST = "t1.localhost"
URL = "/admin/analytics/dashboard/"


def _start(client, email, **data):
    payload = {"email": email, "country": "DE", "save_card": "on", **data}
    response = client.post("/checkout/course/start", payload)
    assert response.status_code == 200, response.content
    return response.json()


def _pay(client, body) -> Order:
    order = Order.objects.get(token=body["order"])
    gw.confirm_card_setup(order.setup_ref)
    assert (
        client.post(body["pay_url"], {"setup_intent": order.setup_ref}).json()["status"] == "paid"
    )
    return order


@pytest.fixture
def staff_client(tenant, client_for):
    get_user_model().objects.create_user("creator", "c@example.com", "pw-123456789", is_staff=True)
    client = client_for(HOST)
    assert client.login(username="creator", password="pw-123456789")
    return client


def test_coupon_figures_are_net_of_the_discount_and_of_refunds(
    tenant, client_for, stripe_api_base, staff_client
):
    catalog(bump=False)
    CouponFactory(code="SPRING20", max_per_customer=None)
    client = client_for(HOST)
    _start(client, "left@example.com", coupon="SPRING20")  # never paid
    kept = _pay(client, _start(client, "a@example.com", coupon="SPRING20"))
    refunded = _pay(client, _start(client, "b@example.com", coupon="SPRING20"))
    _pay(client, _start(client, "c@example.com"))  # no coupon: not in the table
    order_line_refund(
        order=refunded,
        line=refunded.lines.get(),
        amount=Money(400, "USD"),
        reason="requested_by_customer",
        actor="test",
        requested_by="test",
        idempotency_key="metrics-refund",
    )

    [row] = coupon_performance(MetricFilter())
    charged = sum(
        LedgerEntry.objects.filter(
            reference__in=[kept.reference, refunded.reference], kind="charge"
        ).values_list("amount", flat=True)
    )
    # 4900 − 20% = 3920 + 19% VAT = 4665 per paid order.
    assert row == {
        "code": "SPRING20",
        "currency": "USD",
        "checkouts": 3,
        "orders": 2,
        "take_rate": Decimal("0.6667"),
        "discount": 2 * 980,
        "gross": 2 * 4665,
        "net": 2 * 4665 - 400,
    }
    assert row["gross"] == charged
    later = MetricFilter(start=timezone.now() + dt.timedelta(days=1))
    assert coupon_performance(later) == []

    page = staff_client.get(URL).content.decode()
    # The dashboard shows the row formatted: rates in percent, money in its currency.
    assert (
        '<th scope="row">SPRING20</th><td class="num">3</td><td class="num">2</td>'
        '<td class="num">66.7%</td><td class="num">$19.60</td><td class="num">$93.30</td>'
        '<td class="num">$89.30</td>'
    ) in page
    export = staff_client.get(URL, {"export": "coupons"}).content.decode()
    assert list(csv.reader(io.StringIO(export)))[1] == [
        "SPRING20",
        "USD",
        "3",
        "2",
        "0.6667",
        "1960",
        "9330",
        "8930",
    ]


def test_recovered_orders_and_their_revenue_are_counted_once(
    tenant, client_for, stripe_api_base, staff_client
):
    catalog(bump=False)
    client = client_for(HOST)
    left = Order.objects.get(token=_start(client, "left@example.com", remind="on")["order"])
    gone = Order.objects.get(token=_start(client, "gone@example.com", remind="on")["order"])
    assert followups.followups_send_due(now=timezone.now() + dt.timedelta(hours=2)) == 2
    send = FollowUpSend.objects.get(order=left, step=1)
    token = recovery.recovery_token(send=send, schema="t1")
    back = _pay(client, _start(client, "left@example.com", recovery=token))
    assert back.recovered_from_id == left.pk and gone.recoveries.count() == 0

    [row] = recovery_performance(MetricFilter())
    assert row == {
        "currency": "USD",
        "reminded_checkouts": 2,
        "reminders_sent": 2,
        "recovered_orders": 1,
        "recovery_rate": Decimal("0.5000"),
        "gross": 5831,
        "net": 5831,
    }
    order_refund_all(
        order=back,
        reason="requested_by_customer",
        actor="test",
        requested_by="test",
        idempotency_key="metrics-refund-all",
    )
    [after] = recovery_performance(MetricFilter())
    assert (after["gross"], after["net"]) == (5831, 0)
    page = staff_client.get(URL).content.decode()
    assert "Abandoned-checkout recovery" in page and '<td class="num">50.0%</td>' in page
