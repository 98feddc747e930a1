"""Refunds from the orders page: an amount per line with a reason, or the whole order; refusals
read as admin messages; a form sent twice refunds once. Over localstripe."""

from __future__ import annotations

import pytest

from audit.models import AuditEntry
from payments.models import LedgerEntry, Refund, RefundStatus
from storefront.models import Customer, Order, OrderStatus
from tests.admin.conftest import messages_of
from tests.payments import helpers as h

CHANGELIST = "/admin/storefront/order/"


def _paid_order(client_for) -> Order:
    _, bump = h.catalog()
    order = h.checkout_started(client_for("t1.localhost"), bump)
    h.pay(order)
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    return order


def _post(client, action: str, order: Order, **data):
    return client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [order.pk], "index": 0, **data},
        follow="apply" in data,
    )


def _refund_key(client, action: str, order: Order) -> str:
    page = _post(client, action, order)
    assert page.status_code == 200
    return page.context["form"]["refund_key"].value()


@pytest.mark.gateway
def test_the_refund_form_lists_every_line_with_what_is_left_and_refunds_the_amounts_entered(
    owner_client, client_for, stripe_api_base
):
    order = _paid_order(client_for)
    core, bump = order.lines.get(kind="core"), order.lines.get(kind="bump")
    page = _post(owner_client, "refund_lines", order)
    html = page.content.decode()
    assert f'name="amount_{core.pk}"' in html and f'name="amount_{bump.pk}"' in html
    assert "$58.31" in html and "$10.71" in html  # core and bump totals, tax included
    key = page.context["form"]["refund_key"].value()

    done = _post(
        owner_client,
        "refund_lines",
        order,
        apply="Refund",
        refund_key=key,
        reason="damaged file",
        **{f"amount_{core.pk}": "10.00", f"amount_{bump.pk}": "10.71"},
    )
    assert done.status_code == 200
    refunds = {r.line_key: r for r in Refund.objects.all()}
    assert {k: (r.amount, r.status) for k, r in refunds.items()} == {
        core.line_key: (1000, RefundStatus.SUCCEEDED),
        bump.line_key: (h.BUMP_TOTAL, RefundStatus.SUCCEEDED),
    }
    # Tax reversed in proportion to the line (line_tax given): 931 × 1000 / 5831, and all of
    # the bump's tax.
    assert (refunds[core.line_key].tax_amount, refunds[bump.line_key].tax_amount) == (160, 171)
    assert all(r.requested_by == "owner" and r.reason == "damaged file" for r in refunds.values())
    assert any("refunded $10.00" in m for m in messages_of(done))
    order.refresh_from_db()
    assert order.status == OrderStatus.PARTIALLY_REFUNDED


@pytest.mark.gateway
def test_a_refund_above_what_is_left_on_a_line_is_refused_with_a_readable_message(
    owner_client, client_for, stripe_api_base
):
    order = _paid_order(client_for)
    bump = order.lines.get(kind="bump")
    key = _refund_key(owner_client, "refund_lines", order)
    done = _post(
        owner_client,
        "refund_lines",
        order,
        apply="Refund",
        refund_key=key,
        reason="asked",
        **{f"amount_{bump.pk}": "20.00"},
    )
    assert done.status_code == 200
    shown = messages_of(done)
    assert any("not refunded" in m and "exceeds the $10.71 left to refund" in m for m in shown)
    assert not Refund.objects.exists()
    assert not LedgerEntry.objects.filter(kind="refund").exists()
    assert not AuditEntry.objects.filter(action="payments.refund.issue").exists()


@pytest.mark.gateway
def test_sending_the_same_refund_form_twice_refunds_once(owner_client, client_for, stripe_api_base):
    order = _paid_order(client_for)
    bump = order.lines.get(kind="bump")
    key = _refund_key(owner_client, "refund_lines", order)
    form = {"apply": "Refund", "refund_key": key, "reason": "asked", f"amount_{bump.pk}": "5.00"}
    _post(owner_client, "refund_lines", order, **form)
    again = _post(owner_client, "refund_lines", order, **form)
    assert any("already sent" in m for m in messages_of(again))
    assert [r.amount for r in Refund.objects.all()] == [500]
    assert [e.amount for e in LedgerEntry.objects.filter(kind="refund")] == [500]
    assert AuditEntry.objects.filter(action="payments.refund.issue").count() == 1


@pytest.mark.gateway
def test_a_whole_order_refund_asks_for_a_reason_then_refunds_every_line_once(
    owner_client, client_for, stripe_api_base
):
    order = _paid_order(client_for)
    page = _post(owner_client, "refund_in_full", order)
    assert "$69.02 left to refund" in page.content.decode()  # 58.31 + 10.71
    assert not Refund.objects.exists()  # the confirmation page refunds nothing
    key = page.context["form"]["refund_key"].value()
    missing_reason = _post(owner_client, "refund_in_full", order, apply="Yes", refund_key=key)
    assert missing_reason.status_code == 200 and not Refund.objects.exists()

    done = _post(
        owner_client, "refund_in_full", order, apply="Yes", refund_key=key, reason="wrong product"
    )
    assert sorted(r.amount for r in Refund.objects.all()) == sorted([h.CORE_TOTAL, h.BUMP_TOTAL])
    order.refresh_from_db()
    assert order.status == OrderStatus.REFUNDED
    assert sum("refunded" in m for m in messages_of(done)) == 2


@pytest.mark.gateway
def test_a_refund_the_gateway_refuses_is_shown_as_an_error_and_audited_as_failed(
    owner_client, client_for, stripe_api_base, monkeypatch
):
    from payments import services
    from payments.gateway import GatewayRejected

    order = _paid_order(client_for)
    bump = order.lines.get(kind="bump")
    key = _refund_key(owner_client, "refund_lines", order)

    class Refusing:
        def refund_create(self, **kwargs):
            raise GatewayRejected("charge_already_refunded")

    monkeypatch.setattr(services, "get_gateway", lambda **_: Refusing())
    done = _post(
        owner_client,
        "refund_lines",
        order,
        apply="Refund",
        refund_key=key,
        reason="asked",
        **{f"amount_{bump.pk}": "5.00"},
    )
    assert any("gateway refused" in m for m in messages_of(done))
    refund = Refund.objects.get()
    assert refund.status == RefundStatus.FAILED
    entry = AuditEntry.objects.get(action="payments.refund.issue")
    assert entry.changes["status"] == [None, RefundStatus.FAILED]


def test_an_unpaid_order_is_not_offered_for_refund(owner_client):
    customer = Customer.objects.create(email="pending@t1.example")
    order = Order.objects.create(
        token="pendingorder1", customer=customer, currency="USD", country="US"
    )
    response = _post(owner_client, "refund_lines", order)
    assert response.status_code == 302
    follow = owner_client.get(CHANGELIST)
    assert any("only paid orders can be refunded" in m for m in messages_of(follow))
    assert not Refund.objects.exists()


def test_the_order_page_offers_both_refunds(owner_client):
    customer = Customer.objects.create(email="b@t1.example")
    order = Order.objects.create(
        token="someorder", customer=customer, currency="USD", country="US", status=OrderStatus.PAID
    )
    html = owner_client.get(f"{CHANGELIST}{order.pk}/change/").content.decode()
    assert 'value="refund_lines"' in html and 'value="refund_in_full"' in html
    assert f'name="_selected_action" value="{order.pk}"' in html
