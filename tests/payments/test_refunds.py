"""Refunds: never more than was charged for a line (even concurrently), add-on lines alone,
whole orders, and tax reversed in proportion."""

import pytest

from core.money import Money
from payments.models import LedgerEntry, Refund, RefundStatus
from payments.services import (
    LineTax,
    RefundLine,
    RefundRefused,
    refund_create,
    refund_create_for_order,
)
from storefront.models import OrderStatus
from tests import gateway_helpers as gw
from tests.concurrency import in_threads
from tests.payments import helpers as h

pytestmark = pytest.mark.gateway


def _gateway_refunds() -> list:
    return list(h.sdk().v1.refunds.list(params={"limit": 100}).data)


def _paid_order(client_for):
    _, bump = h.catalog()
    order = h.checkout_started(client_for("t1.localhost"), bump)
    h.pay(order)
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    return order


def _line(order, kind):
    return order.lines.get(kind=kind)


@pytest.mark.parametrize("amount", [None, h.BUMP_TOTAL])
def test_five_concurrent_refunds_of_one_line_make_one_refund_at_the_gateway_and_in_the_ledger(
    live_tenant, client_for, stripe_api_base, amount
):
    order = _paid_order(client_for)
    bump = _line(order, "bump")

    def refund():
        return refund_create(
            reference=order.reference,
            line_key=bump.line_key,
            amount=Money(amount, "USD") if amount else None,
            reason="asked",
        )

    done, refused = in_threads(5, refund, tenant=live_tenant, timeout=30)
    assert all(isinstance(r, RefundRefused) for r in refused), refused
    assert len(done) == 1 and len(refused) == 4 and done[0].status == RefundStatus.SUCCEEDED
    assert all("left to refund" in str(r) for r in refused)
    assert [r.amount for r in _gateway_refunds()] == [h.BUMP_TOTAL]
    assert list(LedgerEntry.objects.filter(kind="refund").values_list("amount", flat=True)) == [
        h.BUMP_TOTAL
    ]


def test_an_over_refund_is_refused_with_a_clear_reason_and_writes_nothing(
    tenant, client_for, stripe_api_base
):
    order = _paid_order(client_for)
    bump = _line(order, "bump")
    with pytest.raises(RefundRefused, match=r"exceeds the \$10.71 left to refund"):
        refund_create(
            reference=order.reference, line_key=bump.line_key, amount=Money(h.BUMP_TOTAL + 1, "USD")
        )
    refund_create(reference=order.reference, line_key=bump.line_key, amount=Money(500, "USD"))
    with pytest.raises(RefundRefused, match=r"exceeds the \$5.71 left to refund"):
        refund_create(reference=order.reference, line_key=bump.line_key, amount=Money(600, "USD"))
    with pytest.raises(RefundRefused, match="currency"):
        refund_create(reference=order.reference, line_key=bump.line_key, amount=Money(1, "EUR"))
    with pytest.raises(RefundRefused, match="nothing was charged"):
        refund_create(reference=order.reference, line_key="line:0", amount=None)
    assert Refund.objects.count() == 1
    assert [r.amount for r in _gateway_refunds()] == [500]


def test_an_add_on_line_is_refunded_alone_with_its_tax(tenant, client_for, stripe_api_base):
    order = _paid_order(client_for)
    bump = _line(order, "bump")
    refund = refund_create(
        reference=order.reference,
        line_key=bump.line_key,
        amount=None,
        line_tax=LineTax(total=bump.total_amount, tax=bump.tax_amount),
    )
    assert refund.status == RefundStatus.SUCCEEDED
    assert (refund.amount, refund.tax_amount) == (h.BUMP_TOTAL, 171)
    refunds = LedgerEntry.objects.filter(kind="refund")
    assert [(e.line_key, e.amount) for e in refunds] == [(bump.line_key, h.BUMP_TOTAL)]
    order.refresh_from_db()
    assert order.status == OrderStatus.PARTIALLY_REFUNDED
    assert [r.amount for r in _gateway_refunds()] == [h.BUMP_TOTAL]


def test_partial_refunds_of_a_line_reverse_exactly_its_tax_in_total(
    tenant, client_for, stripe_api_base
):
    order = _paid_order(client_for)
    core = _line(order, "core")
    tax = LineTax(total=core.total_amount, tax=core.tax_amount)
    parts = [
        refund_create(
            reference=order.reference,
            line_key=core.line_key,
            amount=Money(amount, "USD"),
            line_tax=tax,
        )
        for amount in (1000, 1333)
    ]
    parts.append(
        refund_create(reference=order.reference, line_key=core.line_key, amount=None, line_tax=tax)
    )
    assert [p.amount for p in parts] == [1000, 1333, h.CORE_TOTAL - 2333]
    assert [p.tax_amount for p in parts] == [160, 212, 559]  # 931 * share, cumulative rounding
    assert sum(p.tax_amount for p in parts) == core.tax_amount == 931


def test_a_whole_order_refund_reverses_every_line_once(tenant, client_for, stripe_api_base):
    order = _paid_order(client_for)
    lines = [
        RefundLine(line.line_key, LineTax(line.total_amount, line.tax_amount))
        for line in order.lines.all()
    ]
    refunds = refund_create_for_order(
        reference=order.reference, lines=lines, reason="asked", idempotency_key="admin-1"
    )
    again = refund_create_for_order(
        reference=order.reference, lines=lines, idempotency_key="admin-1"
    )
    assert [r.pk for r in again] == [r.pk for r in refunds]
    assert sorted((r.amount, r.tax_amount) for r in refunds) == [
        (h.BUMP_TOTAL, 171),
        (h.CORE_TOTAL, 931),
    ]
    with pytest.raises(RefundRefused, match="nothing is left"):
        refund_create_for_order(reference=order.reference, lines=lines)
    order.refresh_from_db()
    assert order.status == OrderStatus.REFUNDED
    assert sorted(r.amount for r in _gateway_refunds()) == [h.BUMP_TOTAL, h.CORE_TOTAL]
    assert sum(LedgerEntry.objects.filter(kind="refund").values_list("amount", flat=True)) == (
        h.ORDER_TOTAL
    )
    assert len(gw.payment_intents()) == 1
