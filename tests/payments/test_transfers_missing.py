"""Settled charges that have no transfer (payments.transfer_sweeps.transfers_missing_send, run by
beat's transfer reconciliation): a charge that settled while the store's payouts were pending,
or whose transfer message was lost with the broker's data, reaches the creator once payouts
are enabled: once, at the local Stripe server, never for money refunded before it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from core.models import LoopFailure, OutboxMessage
from core.money import Money
from payments import transfer_sweeps, transfers
from payments.disputes import dispute_sync
from payments.fees import Fee, store_fee
from payments.models import AttemptStatus, ChargeAttempt, PayoutAccount, TransferAttempt
from payments.services import refund_create
from payments.transfers import transfer_for_charge
from tenants.models import Creator
from tests.concurrency import each_at_once
from tests.loops_support import failing_for
from tests.payments import helpers as h

pytestmark = pytest.mark.gateway


def _settled_charge(bump=None) -> ChargeAttempt:
    bump = bump if bump is not None else h.catalog()[1]
    order = h.checkout_started(Client(HTTP_HOST="t1.localhost"), bump)
    attempt = h.pay(order)
    connection.set_tenant(Creator.objects.get(slug="t1"))
    assert attempt.status == AttemptStatus.SUCCEEDED
    return attempt


def _settled_minutes_ago(charge: ChargeAttempt, minutes: float) -> None:
    ChargeAttempt.objects.filter(pk=charge.pk).update(
        finished_at=timezone.now() - dt.timedelta(minutes=minutes)
    )


def _transfers_to(account_ref: str) -> list:
    return list(h.sdk().v1.transfers.list(params={"destination": account_ref}).data)


def _payouts_pending(pending: bool) -> None:
    PayoutAccount.objects.update(payouts_enabled=not pending)


def test_a_charge_settled_while_payouts_were_pending_is_transferred_once_they_are_enabled(
    tenant,
):
    account = h.connected_account()
    _payouts_pending(True)
    charge = _settled_charge()
    assert not OutboxMessage.objects.filter(task_name=transfers.TRANSFER_TASK).exists()
    _settled_minutes_ago(charge, 10)
    assert transfer_sweeps.transfers_missing_send() == 0  # still pending: nothing moves
    assert not TransferAttempt.objects.exists()

    _payouts_pending(False)
    assert transfer_sweeps.transfers_missing_send() == 1
    (made,) = _transfers_to(account)
    row = TransferAttempt.objects.get(charge_attempt=charge)
    fee = store_fee().of(charge.amount)
    assert (made.id, made.amount) == (row.gateway_ref, charge.amount - fee) and row.sends == 1
    assert transfer_sweeps.transfers_missing_send() == 0  # it has its row now
    assert transfer_sweeps.transfers_reconcile_open() == 0  # finished: nothing for beat either
    assert len(_transfers_to(account)) == 1


def test_a_lost_transfer_message_is_made_up_for_after_the_grace_not_before(tenant):
    account = h.connected_account()
    charge = _settled_charge()
    lost = OutboxMessage.objects.filter(
        task_name=transfers.TRANSFER_TASK, kwargs={"charge_attempt_id": charge.pk}
    )
    assert lost.exists()
    lost.delete()  # handed to a broker that then lost its data

    assert transfer_sweeps.transfers_missing_send() == 0  # settled just now: its message has time
    _settled_minutes_ago(charge, 3)
    assert transfer_sweeps.transfers_missing_send() == 1
    row = transfer_for_charge(charge_attempt_id=charge.pk)  # the message, delivered after all
    assert row.sends == 1 and len(_transfers_to(account)) == 1


def test_charges_refunded_in_full_demo_charges_and_old_ones_send_nothing_and_call_nothing(
    tenant, monkeypatch
):
    account = h.connected_account()
    bump = h.catalog()[1]
    refunded, demo, old = (_settled_charge(bump) for _ in range(3))
    OutboxMessage.objects.filter(task_name=transfers.TRANSFER_TASK).delete()
    for line_key in refunded.allocation:
        refund_create(reference=refunded.reference, line_key=line_key, amount=None)
    ChargeAttempt.objects.filter(pk=demo.pk).update(demo=True)
    for charge in (refunded, demo):
        _settled_minutes_ago(charge, 10)
    _settled_minutes_ago(
        old, (transfer_sweeps.MISSING_WINDOW + dt.timedelta(days=1)).total_seconds() / 60
    )

    calls = []
    real = transfers.get_gateway
    monkeypatch.setattr(transfers, "get_gateway", lambda **kw: calls.append(kw) or real(**kw))
    assert transfer_sweeps.transfers_missing_send() == 0
    assert transfer_sweeps.transfers_missing_send() == 0
    assert calls == [] and not TransferAttempt.objects.exists() and _transfers_to(account) == []


def test_one_charge_that_fails_does_not_stop_the_others(tenant, monkeypatch):
    account = h.connected_account()
    bump = h.catalog()[1]
    broken, fine = _settled_charge(bump), _settled_charge(bump)
    for charge in (broken, fine):
        _settled_minutes_ago(charge, 10)
    real = transfer_sweeps.transfer_for_charge
    one_fails = failing_for(real, keyword="charge_attempt_id", bad=broken.pk)
    monkeypatch.setattr(transfer_sweeps, "transfer_for_charge", one_fails)
    assert transfer_sweeps.transfers_missing_send() == 1
    assert [t.amount for t in _transfers_to(account)] == [fine.amount - store_fee().of(fine.amount)]
    failure = LoopFailure.objects.get(loop=transfer_sweeps.LOOP_MISSING)
    assert failure.record_id == str(broken.pk)

    monkeypatch.setattr(transfer_sweeps, "transfer_for_charge", real)
    assert transfer_sweeps.transfers_missing_send() == 1
    assert len(_transfers_to(account)) == 2
    assert not LoopFailure.objects.filter(loop=transfer_sweeps.LOOP_MISSING).exists()


def test_two_sweeps_and_the_message_at_once_make_one_transfer(live_tenant, fee_and_routing_reset):
    account = h.connected_account()
    charge = _settled_charge()
    _settled_minutes_ago(charge, 10)
    _, errors = each_at_once(
        [
            transfer_sweeps.transfers_missing_send,
            transfer_sweeps.transfers_missing_send,
            lambda: transfer_for_charge(charge_attempt_id=charge.pk),
        ],
        tenant=live_tenant,
    )

    assert errors == []
    (row,) = TransferAttempt.objects.all()
    assert row.sends == 1 and [t.id for t in _transfers_to(account)] == [row.gateway_ref]


def test_charges_that_can_never_send_anything_are_not_read_again_every_run(tenant, disputing):
    """Refunded or lost in full, or all fee: left out of the sweep's list in SQL (beat would
    read each of them every 5 minutes for 90 days). Refunded in part, or under an open or won
    dispute: still listed, and transferred."""
    h.connected_account()
    bump = h.catalog()[1]
    refunded, lost, partly, open_dispute, won = (_settled_charge(bump) for _ in range(5))
    OutboxMessage.objects.filter(task_name=transfers.TRANSFER_TASK).delete()
    for line_key in refunded.allocation:
        refund_create(reference=refunded.reference, line_key=line_key, amount=None)
    refund_create(
        reference=partly.reference, line_key=next(iter(partly.allocation)), amount=Money(100, "USD")
    )
    for charge, statuses in (
        (lost, ("needs_response", "lost")),
        (open_dispute, ("needs_response",)),
        (won, ("needs_response", "won")),
    ):
        for status in statuses:
            disputing.says(f"dp_{charge.pk}", charge, status)
            assert dispute_sync(dispute_ref=f"dp_{charge.pk}")
    for charge in (refunded, lost, partly, open_dispute, won):
        _settled_minutes_ago(charge, 10)
    listed = set(transfer_sweeps.charges_missing_transfer().values_list("pk", flat=True))
    assert listed == {partly.pk, open_dispute.pk, won.pk}

    # Charges made under a fee that takes all of them (whatever the store's fee is now): none
    # listed, and none would have sent anything.
    kept = {pk: ChargeAttempt.objects.get(pk=pk) for pk in listed}
    ChargeAttempt.objects.filter(pk__in=listed).update(fee_bps=0, fee_fixed=partly.amount)
    assert set(transfer_sweeps.charges_missing_transfer().values_list("pk", flat=True)) == set()
    for pk in listed:
        assert transfer_for_charge(charge_attempt_id=pk) is None
    ChargeAttempt.objects.filter(pk__in=listed).update(fee_bps=0, fee_fixed=partly.amount - 1)
    assert set(transfer_sweeps.charges_missing_transfer().values_list("pk", flat=True)) == listed

    for pk, charge in kept.items():
        ChargeAttempt.objects.filter(pk=pk).update(
            fee_bps=charge.fee_bps, fee_fixed=charge.fee_fixed
        )
    assert transfer_sweeps.transfers_missing_send() == 3
    rows = {t.charge_attempt_id: t for t in TransferAttempt.objects.all()}
    assert set(rows) == listed
    fee = store_fee()
    assert rows[won.pk].amount == won.amount - fee.of(won.amount)  # nothing held back
    assert rows[partly.pk].amount == transfers.creator_share(
        gross=partly.amount, fee=fee.of(partly.amount), taken_back=100
    )


def test_a_charge_caught_up_later_keeps_the_fee_it_was_made_under(tenant):
    """The store's fee changes while its payouts are pending: the charges made before are
    transferred less the fee they were made under, those made after less the new one; a
    charge from before charges kept their fee takes the store's fee now."""
    account = h.connected_account()
    _payouts_pending(True)
    bump = h.catalog()[1]
    Creator.objects.filter(slug="t1").update(fee_bps=1000, fee_fixed=50)
    before = _settled_charge(bump)
    assert (before.fee_bps, before.fee_fixed) == (1000, 50)
    Creator.objects.filter(slug="t1").update(fee_bps=200, fee_fixed=0)
    after, legacy = _settled_charge(bump), _settled_charge(bump)
    assert (after.fee_bps, after.fee_fixed) == (200, 0)
    ChargeAttempt.objects.filter(pk=legacy.pk).update(fee_bps=None, fee_fixed=None)
    Creator.objects.filter(slug="t1").update(fee_bps=300, fee_fixed=10)
    for charge in (before, after, legacy):
        _settled_minutes_ago(charge, 10)
    _payouts_pending(False)

    assert transfer_sweeps.transfers_missing_send() == 3
    fees = {t.charge_attempt_id: t.fee for t in TransferAttempt.objects.all()}
    assert fees == {
        before.pk: Fee(bps=1000, fixed=50).of(before.amount),
        after.pk: Fee(bps=200, fixed=0).of(after.amount),
        legacy.pk: Fee(bps=300, fixed=10).of(legacy.amount),
    }
    assert sorted(t.amount for t in _transfers_to(account)) == sorted(
        c.amount - fees[c.pk] for c in (before, after, legacy)
    )


def test_a_store_catching_up_many_charges_sends_a_bounded_number_per_run(tenant, monkeypatch):
    h.connected_account()
    _payouts_pending(True)
    bump = h.catalog()[1]
    charges = [_settled_charge(bump) for _ in range(3)]
    for charge in charges:
        _settled_minutes_ago(charge, 10)
    _payouts_pending(False)
    monkeypatch.setattr(transfer_sweeps, "MISSING_PER_RUN", 2)
    assert transfer_sweeps.transfers_missing_send() == 2
    oldest_first = [c.pk for c in charges[:2]]
    assert sorted(TransferAttempt.objects.values_list("charge_attempt_id", flat=True)) == sorted(
        oldest_first
    )
    assert transfer_sweeps.transfers_missing_send() == 1  # the rest on the next run
    assert transfer_sweeps.transfers_missing_send() == 0
    assert TransferAttempt.objects.count() == 3
