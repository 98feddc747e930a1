"""A dispute and the creator's transfer (payments.transfers): an open dispute holds nothing
back, whether it was opened before the transfer was made or after; a lost one takes the
creator's share of it back exactly once (netted when lost before the transfer, a reversal
when lost after); a won one leaves the whole share with the creator. Checked at the local
Stripe server's connected account balance."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.db import connection
from django.utils import timezone

from core.models import OutboxMessage
from core.money import Money
from payments import transfer_sweeps, transfers
from payments.disputes import dispute_sync
from payments.models import (
    ChargeAttempt,
    Dispute,
    ReversalStatus,
    TransferAttempt,
    TransferReversal,
    TransferStatus,
)
from payments.services import refund_create
from payments.transfers import creator_share, transfer_for_charge
from tests.concurrency import in_threads
from tests.payments import helpers as h
from tests.payments.test_reversals import (
    _refund_bump,
    _reversals_at_gateway,
    _run_reversal_tasks,
    _settled_order,
)

pytestmark = pytest.mark.gateway

DISPUTED = 1500


def _dispute(disputing, charge: ChargeAttempt, ref: str, status: str) -> None:
    """The gateway says so, and the dispute is re-read (as its webhook or reconciliation do)."""
    disputing.says(ref, charge, status, amount=DISPUTED)
    assert dispute_sync(dispute_ref=ref)


def _share(charge: ChargeAttempt, fee: int, taken: int) -> int:
    return creator_share(gross=charge.amount, fee=fee, taken_back=taken)


def test_a_charge_disputed_before_its_transfer_is_transferred_whole_and_a_win_keeps_it(
    tenant, disputing, client_for
):
    account = h.connected_account()
    order, charge = _settled_order()
    client = client_for("t1.localhost")

    def webhook(status: str, event_id: str, event_type: str) -> None:
        disputing.says("dp_1", charge, status, amount=DISPUTED)
        assert (
            h.deliver(client, h.event(event_id, event_type, "dispute", "dp_1")).status_code == 200
        )
        h.run_payment_tasks(tenant)
        connection.set_tenant(tenant)

    webhook("needs_response", "evt_open", "charge.dispute.created")
    transfer = transfer_for_charge(charge_attempt_id=charge.pk)
    assert transfer.status == TransferStatus.SUCCEEDED
    assert transfer.amount == _share(charge, transfer.fee, 0) == charge.amount - transfer.fee
    assert not TransferReversal.objects.exists()  # nothing netted for an open dispute

    webhook("won", "evt_won", "charge.dispute.closed")
    webhook("won", "evt_won_again", "charge.dispute.closed")  # a replay
    assert _run_reversal_tasks() == 0  # a won dispute queues no take-back
    Dispute.objects.update(updated_at=timezone.now() - dt.timedelta(minutes=5))
    assert transfer_sweeps.reversals_reconcile_open() == 0
    assert not TransferReversal.objects.exists()
    assert h.connected_balance(account) == charge.amount - transfer.fee  # the whole share, for good


def test_a_dispute_open_at_transfer_time_and_lost_later_takes_the_share_back_once(
    tenant, disputing
):
    account = h.connected_account()
    order, charge = _settled_order()
    _dispute(disputing, charge, "dp_1", "needs_response")
    transfer = transfer_for_charge(charge_attempt_id=charge.pk)
    assert transfer.amount == _share(charge, transfer.fee, 0)

    _dispute(disputing, charge, "dp_1", "lost")
    _dispute(disputing, charge, "dp_1", "lost")  # read again: final, nothing new
    assert _run_reversal_tasks() == 1
    assert _run_reversal_tasks() == 1  # the task run again changes nothing
    (row,) = TransferReversal.objects.all()
    taken = _share(charge, transfer.fee, 0) - _share(charge, transfer.fee, DISPUTED)
    assert (row.cause, row.status, row.sends) == ("dispute:dp_1", ReversalStatus.SUCCEEDED, 1)
    assert (row.covered, row.amount) == (DISPUTED, taken)
    (made,) = _reversals_at_gateway(transfer.gateway_ref)
    assert made.id == row.gateway_ref and made.amount == taken
    assert h.connected_balance(account) == transfer.amount - taken

    # Refunding the rest takes back what is left of the share and no more.
    core = order.lines.get(kind="core")
    refund_create(reference=order.reference, line_key=core.line_key, amount=None)
    _refund_bump(order)
    _run_reversal_tasks()
    rows = TransferReversal.objects.all()
    assert {r.status for r in rows} == {ReversalStatus.SUCCEEDED}
    assert sum(r.amount for r in rows) == transfer.amount
    assert h.connected_balance(account) == 0


def test_a_dispute_lost_before_the_transfer_is_netted_out_of_it(tenant, disputing):
    account = h.connected_account()
    order, charge = _settled_order()
    _dispute(disputing, charge, "dp_1", "needs_response")
    _dispute(disputing, charge, "dp_1", "lost")
    assert _run_reversal_tasks() == 1  # no transfer yet: nothing to take back
    assert not TransferReversal.objects.exists()

    transfer = transfer_for_charge(charge_attempt_id=charge.pk)
    assert transfer.amount == _share(charge, transfer.fee, DISPUTED)
    (netted,) = TransferReversal.objects.all()
    assert (netted.cause, netted.status, netted.covered) == (
        "dispute:dp_1",
        ReversalStatus.NETTED,
        DISPUTED,
    )
    assert _run_reversal_tasks() == 1  # the lost dispute's task again: already netted
    Dispute.objects.update(updated_at=timezone.now() - dt.timedelta(minutes=5))
    assert transfer_sweeps.causes_without_reversal(timezone.now()) == []
    assert _reversals_at_gateway(transfer.gateway_ref) == []
    assert h.connected_balance(account) == transfer.amount


def test_a_lost_dispute_racing_the_transfer_is_taken_back_exactly_once(
    live_tenant, disputing, fee_and_routing_reset
):
    """The transfer and the dispute's loss at once, from many threads: either the transfer is
    made less the dispute (netted) or it is made whole and the loss reversed; never both,
    never neither."""
    account = h.connected_account()
    order, charge = _settled_order()
    _dispute(disputing, charge, "dp_1", "needs_response")
    disputing.says("dp_1", charge, "lost", amount=DISPUTED)
    turns = itertools.count()

    def transfer_or_lose():
        if next(turns) % 2:
            transfer_for_charge(charge_attempt_id=charge.pk)
        else:
            dispute_sync(dispute_ref="dp_1")
            transfers.reverse_for_cause(kind="chargeback", gateway_ref="dp_1")
        return True

    results, errors = in_threads(12, transfer_or_lose, tenant=live_tenant)
    assert errors == [] and len(results) == 12
    connection.set_tenant(live_tenant)
    transfers.reverse_for_cause(kind="chargeback", gateway_ref="dp_1")  # the queued task
    transfer = TransferAttempt.objects.get(charge_attempt=charge)
    (row,) = TransferReversal.objects.filter(cause="dispute:dp_1")
    assert row.status in (ReversalStatus.NETTED, ReversalStatus.SUCCEEDED)
    kept = _share(charge, transfer.fee, DISPUTED)
    if row.status == ReversalStatus.NETTED:
        assert transfer.amount == kept and _reversals_at_gateway(transfer.gateway_ref) == []
    else:
        assert transfer.amount == _share(charge, transfer.fee, 0)
        assert len(_reversals_at_gateway(transfer.gateway_ref)) == 1
    assert h.connected_balance(account) == kept


def test_a_storm_of_transfers_refunds_losses_and_sweeps_on_several_charges_adds_up(
    live_tenant, disputing, fee_and_routing_reset
):
    """Every step that moves a creator's money, at once, on three charges: transfers, partial
    refunds with their reversal tasks, a dispute lost on one charge, and the reconciliation
    sweep. No step fails (no deadlock), each cause is taken back once, and the connected
    account holds exactly each charge's share of what the store kept."""
    account = h.connected_account()
    bump = h.catalog()[1]
    settled = [_settled_order(bump) for _ in range(3)]
    for _, charge in settled:
        _dispute(disputing, charge, f"dp_{charge.pk}", "needs_response")
    lost = settled[1][1]
    for _, charge in settled:
        disputing.says(
            f"dp_{charge.pk}", charge, "lost" if charge is lost else "won", amount=DISPUTED
        )
    steps = []
    for order, charge in settled:
        core = order.lines.get(kind="core").line_key
        for n in range(2):
            steps.append(("refund", order.reference, core, f"storm-{charge.pk}-{n}"))
        steps.append(("transfer", charge.pk))
        steps.append(("dispute", f"dp_{charge.pk}"))
    steps += [("sweep",)] * 4
    turns = itertools.count()

    def step():
        kind, *args = steps[next(turns) % len(steps)]
        if kind == "refund":
            reference, line_key, key = args
            refund = refund_create(
                reference=reference,
                line_key=line_key,
                amount=Money(700, "USD"),
                idempotency_key=key,
            )
            transfers.reverse_for_cause(kind="refund", gateway_ref=refund.gateway_ref)
        elif kind == "transfer":
            transfer_for_charge(charge_attempt_id=args[0])
        elif kind == "dispute":
            dispute_sync(dispute_ref=args[0])
            transfers.reverse_for_cause(kind="chargeback", gateway_ref=args[0])
        else:
            transfer_sweeps.transfers_reconcile_open()
        return kind

    results, errors = in_threads(len(steps), step, tenant=live_tenant)
    assert errors == [] and len(results) == len(steps)
    connection.set_tenant(live_tenant)
    for refund_or_loss in OutboxMessage.objects.filter(task_name=transfers.REVERSAL_TASK):
        transfers.reverse_for_cause(**refund_or_loss.kwargs)  # what the worker does later
    expected = 0
    for _, charge in settled:
        transfer = TransferAttempt.objects.get(charge_attempt=charge)
        assert transfer.status == TransferStatus.SUCCEEDED
        taken = 1400 + (DISPUTED if charge.pk == lost.pk else 0)
        expected += _share(charge, transfer.fee, taken)
        causes = list(TransferReversal.objects.filter(transfer=transfer).values_list("cause"))
        assert len(causes) == len(set(causes)) == (3 if charge.pk == lost.pk else 2)
    assert h.connected_balance(account) == expected
