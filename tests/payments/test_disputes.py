"""The dispute lifecycle (payments.disputes) against reads the test controls: stale reads
after a final status, inquiries that move no money, and replays that add nothing."""

import pytest
from django.db import connection
from django.test import Client

from analytics.models import Event
from core.money import Money
from payments.disputes import dispute_sync
from payments.gateway import DisputeResult
from payments.models import Dispute, DisputeStatus, LedgerEntry, LedgerKind
from storefront.models import OrderStatus
from tenants.models import Creator
from tests.payments import helpers as h

pytestmark = pytest.mark.gateway


@pytest.fixture
def paid(tenant):
    _, bump = h.catalog()
    order = h.checkout_started(Client(HTTP_HOST="t1.localhost"), bump)
    attempt = h.pay(order)
    connection.set_tenant(Creator.objects.get(slug="t1"))
    return order, attempt


def _read(gateway, attempt, status: str, **funds) -> None:
    gateway.disputes["dp_5"] = DisputeResult(
        dispute_ref="dp_5",
        payment_ref=attempt.gateway_ref,
        amount=Money(attempt.amount, "USD"),
        status=status,
        reason="product_not_received",
        evidence_due_by=1_900_000_000,
        **funds,
    )


def _kinds() -> dict[str, int]:
    totals: dict[str, int] = {}
    for entry in LedgerEntry.objects.exclude(kind=LedgerKind.CHARGE):
        totals[entry.kind] = totals.get(entry.kind, 0) + entry.amount
    return totals


def test_an_inquiry_is_recorded_and_moves_no_money(tenant, disputing, paid):
    order, attempt = paid
    _read(disputing, attempt, "warning_needs_response")
    assert dispute_sync(dispute_ref="dp_5")
    assert Dispute.objects.get().status == DisputeStatus.WARNING_NEEDS_RESPONSE
    assert _kinds() == {}
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID


def test_a_stale_read_after_the_decision_changes_nothing_and_replays_add_nothing(
    tenant, disputing, paid
):
    order, attempt = paid
    _read(disputing, attempt, "won", funds_withdrawn=True, funds_reinstated=True)
    for _ in range(3):
        dispute_sync(dispute_ref="dp_5")
    # The created event's read, processed last (a slow worker): the dispute stays won.
    _read(disputing, attempt, "needs_response", funds_withdrawn=True, funds_reinstated=False)
    dispute_sync(dispute_ref="dp_5")
    _read(disputing, attempt, "lost", funds_withdrawn=True, funds_reinstated=False)
    dispute_sync(dispute_ref="dp_5")
    row = Dispute.objects.get()
    assert row.status == DisputeStatus.WON and row.closed_at is not None
    assert row.evidence_due_by.timestamp() == 1_900_000_000
    assert sum(row.lines.values()) == attempt.amount == row.amount
    # One chargeback and one reinstatement per line: two lines (core and bump).
    assert LedgerEntry.objects.filter(kind=LedgerKind.CHARGEBACK).count() == 2
    assert LedgerEntry.objects.filter(kind=LedgerKind.REINSTATED).count() == 2
    assert _kinds() == {"chargeback": attempt.amount, "reinstated": attempt.amount}
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID


def test_without_balance_transactions_the_status_decides_the_money(tenant, disputing, paid):
    order, attempt = paid
    _read(disputing, attempt, "under_review")  # Stripe withdrew the funds when it opened
    dispute_sync(dispute_ref="dp_5")
    assert _kinds() == {"chargeback": attempt.amount}
    order.refresh_from_db()
    assert order.status == OrderStatus.REFUNDED
    _read(disputing, attempt, "lost")
    dispute_sync(dispute_ref="dp_5")
    assert _kinds() == {"chargeback": attempt.amount}
    assert Dispute.objects.get().status == DisputeStatus.LOST


@pytest.mark.parametrize("outcome", ["won", "lost"])
def test_a_dispute_outcome_is_one_event_however_often_and_late_it_is_heard(
    tenant, disputing, paid, client_for, outcome
):
    order, attempt = paid
    client = client_for("t1.localhost")
    won = outcome == "won"

    def hear(status: str, event_id: str, event_type: str) -> None:
        _read(disputing, attempt, status, funds_withdrawn=True, funds_reinstated=won)
        response = h.deliver(client, h.event(event_id, event_type, "dispute", "dp_5"))
        assert response.status_code == 200, response.content
        h.run_payment_tasks(tenant)

    _read(disputing, attempt, "needs_response", funds_withdrawn=True, funds_reinstated=False)
    hear("needs_response", "evt_dp_open", "charge.dispute.created")
    hear(outcome, "evt_dp_closed", "charge.dispute.closed")
    hear(outcome, "evt_dp_closed", "charge.dispute.closed")  # the same event delivered twice
    hear(outcome, "evt_dp_closed_again", "charge.dispute.closed")  # a replay, another id
    if won:
        hear(outcome, "evt_dp_back", "charge.dispute.funds_reinstated")
    for _ in range(2):  # re-read directly too (the reconciliation's path)
        dispute_sync(dispute_ref="dp_5")
    _read(disputing, attempt, "under_review", funds_withdrawn=True, funds_reinstated=False)
    dispute_sync(dispute_ref="dp_5")  # a stale read processed last

    name = f"dispute_{outcome}"
    events = list(Event.objects.filter(name__in=["dispute_won", "dispute_lost"]))
    assert [e.name for e in events] == [name]
    [event] = events
    assert (event.order_id, event.customer_id) == (order.pk, order.customer_id)
    assert (event.amount, event.currency) == (attempt.amount, "USD")
    assert event.reason == "product_not_received"
    assert event.properties["dispute"] == "dp_5"
    assert Event.objects.filter(name="chargeback_opened", order_id=order.pk).count() == 2
    assert Dispute.objects.get().status == outcome


def test_an_inquiry_closed_without_a_decision_is_no_outcome_event(tenant, disputing, paid):
    _, attempt = paid
    _read(disputing, attempt, "warning_needs_response")
    dispute_sync(dispute_ref="dp_5")
    _read(disputing, attempt, "warning_closed")
    dispute_sync(dispute_ref="dp_5")
    assert Dispute.objects.get().status == DisputeStatus.WARNING_CLOSED
    assert not Event.objects.filter(name__in=["dispute_won", "dispute_lost"]).exists()
