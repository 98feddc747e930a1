"""The support role's refund limit under concurrency (storefront/services/refunds.py
`refund_limit_check`, run as the refund's guard in its reservation transaction).

Two support refunds of one order at the same moment, each within the limit but not both:
the second is counted after the first is reserved (it waits on the order's row lock), so it
is refused. Refunds reserved but not yet at the gateway count toward the limit too.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from payments.models import Refund, RefundStatus
from payments.services import RefundRefused
from storefront import team
from storefront.models import Customer, StaffRole, StoreSettings
from storefront.services.refunds import refund_limit_check
from tests.factories import ProductFactory
from tests.orders import at, make_order

pytestmark = pytest.mark.slow


def _limit(amount: int) -> None:
    # Through current(): a committing test before this one may have emptied the table.
    row = StoreSettings.current()
    row.support_refund_limit = amount
    row.save()


def _support():
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(
        username="race@support.example", email="race@support.example", password="x-pass-123"
    )
    team._role_apply(user, StaffRole.SUPPORT)
    return get_user_model().objects.get(pk=user.pk)  # fresh permission cache


def _order():
    product = ProductFactory(price_amount=4900)
    customer = Customer.objects.create(email="race@buyer.example")
    order, _ = make_order(
        customer, visitor="v1", source="", paid_at=at(5, 1), lines=[("core", product, None, 4900)]
    )
    return order


def _reserve(order, amount: int) -> Refund:
    line = order.lines.get()
    return Refund.objects.create(
        reference=order.reference,
        line_key=line.line_key,
        amount=amount,
        currency="USD",
        status=RefundStatus.IN_FLIGHT,
        idempotency_key=f"race-{amount}-{time.monotonic_ns()}",
    )


def test_a_refund_reserved_but_not_yet_at_the_gateway_counts_toward_the_limit(tenant):
    _limit(1500)
    support, order = _support(), _order()
    refund_limit_check(actor=support, order=order, amount=1000)  # within the limit
    _reserve(order, 1000)
    with pytest.raises(RefundRefused, match="refunds above"):
        refund_limit_check(actor=support, order=order, amount=600)


def test_two_support_refunds_at_once_cannot_pass_the_limit_together(live_tenant):
    _limit(1500)
    support, order = _support(), _order()
    first_checked = threading.Event()
    outcomes: dict[str, str] = {}

    def refund(name: str, amount: int, hold: float) -> None:
        connection.set_tenant(live_tenant)
        try:
            with transaction.atomic():
                refund_limit_check(actor=support, order=order, amount=amount)
                if name == "first":
                    first_checked.set()
                    time.sleep(hold)  # the gateway is not called here: the row is reserved
                _reserve(order, amount)
            outcomes[name] = "reserved"
        except RefundRefused:
            outcomes[name] = "refused"
        finally:
            connection.close()

    first = threading.Thread(target=refund, args=("first", 1000, 0.5))
    first.start()
    assert first_checked.wait(10)
    second = threading.Thread(target=refund, args=("second", 1000, 0))
    second.start()
    first.join(10)
    second.join(10)
    assert outcomes == {"first": "reserved", "second": "refused"}
    assert list(Refund.objects.values_list("amount", flat=True)) == [1000]
