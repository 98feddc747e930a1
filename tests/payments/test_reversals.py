"""Reversals (payments.transfers): a refund or a lost dispute takes the creator's share of it
back from the charge's transfer, exactly once, checked at the local Stripe server's connected
account balance; a refund recorded before the transfer is netted out of it instead."""

from __future__ import annotations

import datetime as dt
import itertools
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.utils import timezone

from core.models import OutboxMessage
from core.money import Money
from payments import transfer_sweeps, transfers
from payments.gateway import DisputeResult
from payments.models import (
    AttemptStatus,
    ChargeAttempt,
    Dispute,
    LedgerEntry,
    LedgerKind,
    PayoutEntry,
    PayoutKind,
    ReversalStatus,
    TransferReversal,
    TransferStatus,
)
from payments.selectors import money_days
from payments.services import refund_create
from payments.transfers import creator_share, transfer_for_charge
from storefront.models import Order
from storefront.services.refunds import order_line_refund
from tenants.models import Creator
from tests.concurrency import in_threads
from tests.payments import helpers as h

pytestmark = pytest.mark.gateway


def _settled_order(bump=None) -> tuple[Order, ChargeAttempt]:
    bump = bump if bump is not None else h.catalog()[1]
    order = h.checkout_started(Client(HTTP_HOST="t1.localhost"), bump)
    attempt = h.pay(order)
    connection.set_tenant(Creator.objects.get(slug="t1"))
    assert attempt.status == AttemptStatus.SUCCEEDED
    return order, attempt


def _reversals_at_gateway(transfer_ref: str) -> list:
    return list(h.sdk().v1.transfers.reversals.list(transfer_ref).data)


def _run_reversal_tasks() -> int:
    """What the worker would do with the queued reversal tasks."""
    ran = 0
    for message in OutboxMessage.objects.filter(task_name=transfers.REVERSAL_TASK).order_by("pk"):
        transfers.reverse_for_cause(**message.kwargs)
        ran += 1
    return ran


def _refund_bump(order: Order):
    owner = get_user_model().objects.get(email="owner@t1.example")
    return order_line_refund(
        order=order,
        line=order.lines.get(kind="bump"),
        amount=None,
        reason="changed their mind",
        actor=owner,
        requested_by=owner.email,
        idempotency_key="refund-bump-1",
    ).refunds[0]


@pytest.fixture
def routing_reset(django_db_blocker):
    yield
    with django_db_blocker.unblock():
        Creator.objects.filter(slug="t1").update(payout_account_ref="")


def test_the_creators_share_is_pro_rata_and_adds_up_to_the_transfer():
    gross, fee = 7001, 233
    cuts = [1, 999, 2500, 3501]
    taken, shares = 0, []
    for cut in cuts:
        before = creator_share(gross=gross, fee=fee, taken_back=taken)
        taken += cut
        shares.append(before - creator_share(gross=gross, fee=fee, taken_back=taken))
    assert creator_share(gross=gross, fee=fee, taken_back=0) == gross - fee
    assert sum(shares) == gross - fee and all(s >= 0 for s in shares)
    assert shares[2] == round(2500 * (gross - fee) / gross)


def test_a_refunded_add_on_takes_back_exactly_its_share(tenant):
    account = h.connected_account()
    order, charge = _settled_order()
    transfer = transfer_for_charge(charge_attempt_id=charge.pk)
    assert transfer.status == TransferStatus.SUCCEEDED
    assert h.connected_balance(account) == transfer.amount

    refund = _refund_bump(order)
    assert refund.amount == h.BUMP_TOTAL
    assert OutboxMessage.objects.filter(
        task_name=transfers.REVERSAL_TASK,
        kwargs={"kind": LedgerKind.REFUND, "gateway_ref": refund.gateway_ref},
    ).exists()  # queued in the transaction that recorded the refund
    assert _run_reversal_tasks() == 1
    assert _run_reversal_tasks() == 1  # the task run again changes nothing

    share = transfer.amount - creator_share(
        gross=charge.amount, fee=transfer.fee, taken_back=h.BUMP_TOTAL
    )
    (row,) = TransferReversal.objects.all()
    assert row.status == ReversalStatus.SUCCEEDED and row.sends == 1
    assert (row.covered, row.amount, row.fee) == (h.BUMP_TOTAL, share, h.BUMP_TOTAL - share)
    (made,) = _reversals_at_gateway(transfer.gateway_ref)
    assert made.id == row.gateway_ref and made.amount == share
    assert h.connected_balance(account) == transfer.amount - share
    ledger = {(e.kind, e.amount, e.fee) for e in PayoutEntry.objects.all()}
    assert ledger == {
        (PayoutKind.TRANSFER, transfer.amount, transfer.fee),
        (PayoutKind.REVERSAL, share, h.BUMP_TOTAL - share),
    }


def test_refunding_everything_takes_back_the_whole_transfer_and_no_more(tenant):
    account = h.connected_account()
    order, charge = _settled_order()
    transfer = transfer_for_charge(charge_attempt_id=charge.pk)
    core = order.lines.get(kind="core")
    refund_create(reference=order.reference, line_key=core.line_key, amount=Money(1001, "USD"))
    _refund_bump(order)
    refund_create(reference=order.reference, line_key=core.line_key, amount=None)
    _run_reversal_tasks()
    rows = list(TransferReversal.objects.all())
    assert len(rows) == 3 and {r.status for r in rows} == {ReversalStatus.SUCCEEDED}
    assert sum(r.amount for r in rows) == transfer.amount
    assert sum(r.covered for r in rows) == charge.amount
    assert h.connected_balance(account) == 0


def test_a_refund_recorded_before_the_transfer_is_netted_out_of_it_not_sent_then_taken_back(
    tenant,
):
    account = h.connected_account()
    order, charge = _settled_order()
    _refund_bump(order)
    assert _run_reversal_tasks() == 1  # no transfer yet: nothing to take back
    assert not TransferReversal.objects.exists()

    transfer = transfer_for_charge(charge_attempt_id=charge.pk)
    expected = creator_share(gross=charge.amount, fee=transfer.fee, taken_back=h.BUMP_TOTAL)
    assert transfer.status == TransferStatus.SUCCEEDED and transfer.amount == expected
    (netted,) = TransferReversal.objects.all()
    assert netted.status == ReversalStatus.NETTED and netted.covered == h.BUMP_TOTAL
    assert _run_reversal_tasks() == 1  # the refund's task again: already netted
    assert TransferReversal.objects.count() == 1
    assert _reversals_at_gateway(transfer.gateway_ref) == []
    assert h.connected_balance(account) == expected
    (entry,) = PayoutEntry.objects.all()
    assert (entry.gross, entry.amount) == (charge.amount - h.BUMP_TOTAL, expected)


def test_a_refund_while_the_transfer_is_in_flight_is_sent_once_the_transfer_is_recorded(
    tenant, monkeypatch
):
    account = h.connected_account()
    order, charge = _settled_order()

    def killed(**kwargs):
        raise SystemExit("worker killed after the transfer call")

    with monkeypatch.context() as patched:
        patched.setattr(transfers, "transfer_record", killed)
        with pytest.raises(SystemExit):
            transfer_for_charge(charge_attempt_id=charge.pk)
    _refund_bump(order)
    _run_reversal_tasks()
    (row,) = TransferReversal.objects.all()
    assert row.status == ReversalStatus.CREATED and row.sends == 0  # waits for its transfer

    transfer = transfers.transfer_reconcile(transfer_id=row.transfer_id, grace=timedelta(0))
    assert transfer.status == TransferStatus.SUCCEEDED
    assert OutboxMessage.objects.filter(
        task_name=transfers.REVERSALS_TASK, kwargs={"transfer_id": transfer.pk}
    ).exists()
    assert transfers.reversals_send(transfer_id=transfer.pk) == 1
    row.refresh_from_db()
    assert row.status == ReversalStatus.SUCCEEDED
    assert h.connected_balance(account) == transfer.amount - row.amount


def test_a_crash_between_the_reversal_call_and_recording_it_leaves_exactly_one(tenant, monkeypatch):
    account = h.connected_account()
    order, charge = _settled_order()
    transfer = transfer_for_charge(charge_attempt_id=charge.pk)
    _refund_bump(order)

    def killed(**kwargs):
        raise SystemExit("worker killed after the gateway made the reversal")

    with monkeypatch.context() as patched:
        patched.setattr(transfers, "reversal_record", killed)
        with pytest.raises(SystemExit):
            _run_reversal_tasks()
    (row,) = TransferReversal.objects.all()
    assert row.status == ReversalStatus.IN_FLIGHT and row.gateway_ref == ""
    assert _run_reversal_tasks() == 1  # a re-run of the task does not send it again
    assert transfers.reversal_reconcile(reversal_id=row.pk).status == ReversalStatus.IN_FLIGHT

    settled = transfers.reversal_reconcile(reversal_id=row.pk, grace=timedelta(0))
    (made,) = _reversals_at_gateway(transfer.gateway_ref)
    assert settled.status == ReversalStatus.SUCCEEDED and settled.gateway_ref == made.id
    assert settled.sends == 1  # found at the gateway: not sent again
    assert h.connected_balance(account) == transfer.amount - row.amount
    assert PayoutEntry.objects.filter(kind=PayoutKind.REVERSAL).count() == 1


def test_concurrent_reversal_tasks_and_reconciliation_passes_make_one_reversal_per_refund(
    live_tenant, routing_reset
):
    account = h.connected_account()
    order, charge = _settled_order()
    transfer = transfer_for_charge(charge_attempt_id=charge.pk)
    core = order.lines.get(kind="core")
    first = refund_create(
        reference=order.reference, line_key=core.line_key, amount=Money(1500, "USD")
    )
    second = _refund_bump(order)
    causes = [first.gateway_ref, second.gateway_ref]

    turns = itertools.count()

    def reverse_or_reconcile():
        cause = causes[next(turns) % 2]
        transfers.reverse_for_cause(kind=LedgerKind.REFUND, gateway_ref=cause)
        transfer_sweeps.transfers_reconcile_open()
        for row in TransferReversal.objects.filter(status=ReversalStatus.IN_FLIGHT):
            transfers.reversal_reconcile(reversal_id=row.pk)
        return True

    results, errors = in_threads(20, reverse_or_reconcile, tenant=live_tenant)
    assert errors == [] and len(results) == 20
    connection.set_tenant(live_tenant)
    rows = list(TransferReversal.objects.order_by("pk"))
    assert len(rows) == 2 and {r.cause for r in rows} == {f"refund:{c}" for c in causes}
    assert all(r.status == ReversalStatus.SUCCEEDED and r.sends == 1 for r in rows)
    made = _reversals_at_gateway(transfer.gateway_ref)
    assert sorted(m.id for m in made) == sorted(r.gateway_ref for r in rows)
    taken = creator_share(gross=charge.amount, fee=transfer.fee, taken_back=0) - creator_share(
        gross=charge.amount, fee=transfer.fee, taken_back=1500 + h.BUMP_TOTAL
    )
    assert sum(r.amount for r in rows) == taken
    assert h.connected_balance(account) == transfer.amount - taken


def test_a_lost_dispute_takes_back_the_creators_share_and_an_open_one_does_not(
    tenant, disputing, client_for
):
    account = h.connected_account()
    order, charge = _settled_order()
    transfer = transfer_for_charge(charge_attempt_id=charge.pk)
    client = client_for("t1.localhost")

    def dispute(status: str, event_id: str, event_type: str) -> None:
        disputing.disputes["dp_9"] = DisputeResult(
            dispute_ref="dp_9",
            payment_ref=charge.gateway_ref,
            amount=Money(charge.amount, "USD"),
            status=status,
            reason="fraudulent",
        )
        response = h.deliver(client, h.event(event_id, event_type, "dispute", "dp_9"))
        assert response.status_code == 200, response.content
        h.run_payment_tasks(tenant)

    dispute("needs_response", "evt_dp_open", "charge.dispute.created")
    assert _run_reversal_tasks() == 0  # open: the platform carries it; nothing taken back yet
    assert h.connected_balance(account) == transfer.amount

    dispute("lost", "evt_dp_lost", "charge.dispute.closed")
    dispute("lost", "evt_dp_lost_again", "charge.dispute.closed")  # a replay
    _run_reversal_tasks()
    (row,) = TransferReversal.objects.all()
    assert row.cause == "dispute:dp_9" and row.status == ReversalStatus.SUCCEEDED
    assert (row.covered, row.amount) == (charge.amount, transfer.amount)
    assert h.connected_balance(account) == 0


def _direct_money_days(since: dt.date) -> dict[tuple[dt.date, str], dict[str, int]]:
    """The per-day money recomputed row by row from the two ledgers."""
    days: dict[tuple[dt.date, str], dict[str, int]] = {}
    for entry in LedgerEntry.objects.all():
        day = entry.created_at.astimezone(dt.UTC).date()
        if day < since:
            continue
        field = {
            "charge": "gross",
            "refund": "refunds",
            "chargeback": "disputes",
            "reinstated": "disputes",
        }[entry.kind]
        sign = -1 if entry.kind == "reinstated" else 1  # a won dispute gives its money back
        row = days.setdefault((day, entry.currency), dict.fromkeys(FIELDS, 0))
        row[field] += sign * entry.amount
    for entry in PayoutEntry.objects.all():
        day = entry.created_at.astimezone(dt.UTC).date()
        if day < since:
            continue
        sign = 1 if entry.kind == PayoutKind.TRANSFER else -1
        row = days.setdefault((day, entry.currency), dict.fromkeys(FIELDS, 0))
        row["fees"] += sign * entry.fee
        row["net"] += sign * entry.amount
    return days


FIELDS = ("gross", "fees", "refunds", "disputes", "net")


def test_the_money_per_day_equals_a_recomputation_and_adds_up_to_what_the_creator_holds(
    tenant,
):
    account = h.connected_account()
    Creator.objects.filter(pk=tenant.pk).update(fee_bps=750, fee_fixed=30)
    old_order, old_charge = _settled_order()
    transfer_for_charge(charge_attempt_id=old_charge.pk)
    _refund_bump(old_order)
    _run_reversal_tasks()
    yesterday = timezone.now() - dt.timedelta(days=1)
    LedgerEntry.objects.all().update(created_at=yesterday)
    PayoutEntry.objects.all().update(created_at=yesterday)
    new_order, new_charge = _settled_order(old_order.lines.get(kind="bump").offer)
    transfer_for_charge(charge_attempt_id=new_charge.pk)
    core = new_order.lines.get(kind="core")
    refund_create(reference=new_order.reference, line_key=core.line_key, amount=Money(777, "USD"))
    _run_reversal_tasks()

    since = (timezone.now() - dt.timedelta(days=13)).astimezone(dt.UTC).date()
    shown = money_days(since=since)
    direct = _direct_money_days(since)
    assert len(shown) == 2 and shown[0].day > shown[1].day  # newest first
    assert {(r.day, r.currency): {f: getattr(r, f) for f in FIELDS} for r in shown} == direct
    # Fee returned on refunds: over the period, gross − fees − refunds = net to the creator,
    # and net is what the connected account holds at the gateway.
    totals = {f: sum(getattr(r, f) for r in shown) for f in FIELDS}
    assert totals["gross"] - totals["fees"] - totals["refunds"] == totals["net"]
    assert totals["net"] == h.connected_balance(account) and totals["refunds"] == h.BUMP_TOTAL + 777

    owner = Client(HTTP_HOST="t1.localhost")
    owner.force_login(get_user_model().objects.get(username="owner"))
    page = owner.get("/admin/getting-started/").content.decode()
    assert 'id="refund-policy"' in page and 'id="money-days"' in page
    assert Money(shown[0].net, "USD").format() in page
    assert Money(shown[1].gross, "USD").format() in page


def test_a_refund_whose_reversal_task_was_lost_is_reversed_by_the_reconciliation_pass(tenant):
    account = h.connected_account()
    order, charge = _settled_order()
    transfer = transfer_for_charge(charge_attempt_id=charge.pk)
    refund = _refund_bump(order)
    OutboxMessage.objects.filter(task_name=transfers.REVERSAL_TASK).delete()  # the task is lost
    assert transfer_sweeps.transfers_reconcile_open() == 0  # too fresh: may be queued
    LedgerEntry.objects.filter(gateway_ref=refund.gateway_ref).update(
        created_at=timezone.now() - dt.timedelta(minutes=5)
    )
    assert transfer_sweeps.transfers_reconcile_open() == 1
    (row,) = TransferReversal.objects.all()
    assert row.cause == f"refund:{refund.gateway_ref}" and row.status == ReversalStatus.SUCCEEDED
    assert transfer_sweeps.transfers_reconcile_open() == 0  # reversed: nothing left to look at
    assert TransferReversal.objects.count() == 1
    assert h.connected_balance(account) == transfer.amount - row.amount


def test_a_lost_dispute_whose_reversal_task_was_lost_is_reversed_once_and_a_won_one_never(
    tenant, disputing, client_for
):
    account = h.connected_account()
    bump = h.catalog()[1]
    (_, lost_charge), (_, won_charge) = _settled_order(bump), _settled_order(bump)
    lost_transfer = transfer_for_charge(charge_attempt_id=lost_charge.pk)
    won_transfer = transfer_for_charge(charge_attempt_id=won_charge.pk)
    client = client_for("t1.localhost")

    def close(ref: str, charge: ChargeAttempt, status: str) -> None:
        for n, (state, kind) in enumerate((("needs_response", "created"), (status, "closed"))):
            disputing.disputes[ref] = DisputeResult(
                dispute_ref=ref,
                payment_ref=charge.gateway_ref,
                amount=Money(charge.amount, "USD"),
                status=state,
                reason="fraudulent",
            )
            event = h.event(f"evt_{ref}_{n}", f"charge.dispute.{kind}", "dispute", ref)
            assert h.deliver(client, event).status_code == 200
            h.run_payment_tasks(tenant)

    close("dp_lost", lost_charge, "lost")
    close("dp_won", won_charge, "won")
    OutboxMessage.objects.filter(task_name=transfers.REVERSAL_TASK).delete()  # the task is lost
    stale = timezone.now() - transfers.IN_FLIGHT_GRACE
    assert transfer_sweeps.causes_without_reversal(stale) == []  # closed just now: may be queued

    Dispute.objects.update(updated_at=timezone.now() - dt.timedelta(minutes=5))
    stale = timezone.now() - transfers.IN_FLIGHT_GRACE
    assert transfer_sweeps.causes_without_reversal(stale) == [(LedgerKind.CHARGEBACK, "dp_lost")]
    assert transfer_sweeps.reversals_reconcile_open() == 1
    (row,) = TransferReversal.objects.all()
    assert row.cause == "dispute:dp_lost" and row.status == ReversalStatus.SUCCEEDED
    assert (row.covered, row.amount) == (lost_charge.amount, lost_transfer.amount)
    assert transfer_sweeps.reversals_reconcile_open() == 0  # reversed: nothing left
    assert TransferReversal.objects.count() == 1
    assert h.connected_balance(account) == won_transfer.amount  # the won dispute took nothing back
