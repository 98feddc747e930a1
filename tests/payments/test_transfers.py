"""Transfers to creators (payments.transfers): each settled charge sends gross − fee to the
store's connected account at the local Stripe server, exactly once, also under concurrency and
after a worker dies between the transfer call and recording it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client

from core.models import OutboxMessage
from payments import transfer_sweeps, transfers
from payments.fees import Fee
from payments.gateway import GatewayUnavailable
from payments.models import AttemptStatus, ChargeAttempt, TransferAttempt, TransferStatus
from payments.transfers import transfer_for_charge
from tenants.models import Creator
from tests.concurrency import in_threads
from tests.payments.helpers import catalog, checkout_started, connected_account, pay, sdk

pytestmark = pytest.mark.gateway


def _settled_charge() -> ChargeAttempt:
    _core, bump = catalog()
    order = checkout_started(Client(HTTP_HOST="t1.localhost"), bump)
    attempt = pay(order)
    connection.set_tenant(Creator.objects.get(slug="t1"))
    assert attempt.status == AttemptStatus.SUCCEEDED
    return attempt


def _transfers_to(account_ref: str) -> list:
    return list(sdk().v1.transfers.list(params={"destination": account_ref}).data)


def _balance(account_ref: str) -> int:
    balance = sdk().v1.balance.retrieve(options={"stripe_account": account_ref})
    return sum(item.amount for item in balance.available)


def test_the_fee_rounds_half_up_and_never_exceeds_the_charge():
    assert Fee(bps=290, fixed=30).of(1000) == 59
    assert Fee(bps=250, fixed=0).of(1) == 0  # 0.025 rounds down
    assert Fee(bps=500, fixed=0).of(10) == 1  # 0.5 rounds up
    assert Fee(bps=0, fixed=500).of(300) == 300


def test_a_settled_charge_sends_the_creators_share_less_the_store_fee_once(tenant):
    account = connected_account()
    Creator.objects.filter(pk=tenant.pk).update(fee_bps=1000, fee_fixed=50)
    charge = _settled_charge()
    assert OutboxMessage.objects.filter(
        task_name="payments.transfer_for_charge", kwargs={"charge_attempt_id": charge.pk}
    ).exists()  # queued in the transaction that recorded the charge

    row = transfer_for_charge(charge_attempt_id=charge.pk)
    fee = (charge.amount * 1000 + 5000) // 10000 + 50
    assert row.status == TransferStatus.SUCCEEDED
    assert (row.gross, row.fee, row.amount) == (charge.amount, fee, charge.amount - fee)
    assert row.source_charge_ref.startswith("ch_") and row.transfer_group == charge.reference
    again = transfer_for_charge(charge_attempt_id=charge.pk)
    assert again.pk == row.pk and again.sends == 1
    (made,) = _transfers_to(account)
    assert made.id == row.gateway_ref and made.amount == charge.amount - fee
    assert made.source_transaction == row.source_charge_ref
    assert _balance(account) == charge.amount - fee


def test_no_money_moves_for_a_charge_that_has_not_settled(tenant):
    account = connected_account()
    attempt = ChargeAttempt.objects.create(
        purpose="order:9:primary",
        idempotency_key="att_pending",
        reference="order:9",
        amount=5000,
        currency="USD",
        customer_ref="cus_x",
        payment_method_ref="pm_x",
        status=AttemptStatus.PROCESSING,
        gateway_ref="pi_pending",
    )
    assert transfer_for_charge(charge_attempt_id=attempt.pk) is None
    assert not TransferAttempt.objects.exists() and _transfers_to(account) == []


def test_a_store_without_a_connected_account_sends_nothing(tenant):
    charge = _settled_charge()
    assert not OutboxMessage.objects.filter(task_name="payments.transfer_for_charge").exists()
    assert transfer_for_charge(charge_attempt_id=charge.pk) is None
    assert not TransferAttempt.objects.exists()


def test_a_worker_killed_between_the_transfer_call_and_recording_it_leaves_one_transfer(
    tenant, monkeypatch
):
    account = connected_account()
    charge = _settled_charge()

    def killed(**kwargs):
        raise SystemExit("worker killed after the gateway made the transfer")

    with monkeypatch.context() as patched:
        patched.setattr(transfers, "transfer_record", killed)
        with pytest.raises(SystemExit):
            transfer_for_charge(charge_attempt_id=charge.pk)
    row = TransferAttempt.objects.get()
    assert row.status == TransferStatus.IN_FLIGHT and row.gateway_ref == ""
    assert transfer_for_charge(charge_attempt_id=charge.pk).status == TransferStatus.IN_FLIGHT

    assert transfers.transfer_reconcile(transfer_id=row.pk).status == TransferStatus.IN_FLIGHT
    settled = transfers.transfer_reconcile(transfer_id=row.pk, grace=timedelta(0))
    (made,) = _transfers_to(account)
    assert settled.status == TransferStatus.SUCCEEDED and settled.gateway_ref == made.id
    assert settled.sends == 1  # found at the gateway: not sent again
    assert _balance(account) == row.amount


def test_a_transfer_lost_on_the_way_is_sent_again_with_the_same_key_once(tenant, monkeypatch):
    account = connected_account()
    charge = _settled_charge()
    from payments import gateway as gateway_module

    real = gateway_module.get_gateway()

    class LostOnTheWay:
        def __getattr__(self, name):
            return getattr(real, name)

        def transfer_create(self, **kwargs):
            raise GatewayUnavailable("connection reset before the gateway got it")

    with monkeypatch.context() as patched:
        patched.setattr(transfers, "get_gateway", lambda **_: LostOnTheWay())
        row = transfer_for_charge(charge_attempt_id=charge.pk)
    assert row.status == TransferStatus.IN_FLIGHT and _transfers_to(account) == []
    settled = transfers.transfer_reconcile(transfer_id=row.pk, grace=timedelta(0))
    assert settled.status == TransferStatus.SUCCEEDED and settled.sends == 2
    assert len(_transfers_to(account)) == 1
    again = transfers.transfer_reconcile(transfer_id=row.pk, grace=timedelta(0))
    assert again.sends == 2  # finished: left alone


def test_twenty_concurrent_settlements_and_reconciliation_passes_make_one_transfer(
    live_tenant, fee_and_routing_reset
):
    account = connected_account()
    charge = _settled_charge()
    assert not TransferAttempt.objects.exists()  # the queued task has not run: the race is ours

    def settle_or_reconcile():
        transfer_for_charge(charge_attempt_id=charge.pk)
        transfer_sweeps.transfers_reconcile_open()
        row = TransferAttempt.objects.filter(charge_attempt_id=charge.pk).first()
        if row is not None and row.status == TransferStatus.IN_FLIGHT:
            transfers.transfer_reconcile(transfer_id=row.pk)
        return True

    results, errors = in_threads(20, settle_or_reconcile, tenant=live_tenant)
    assert errors == [] and len(results) == 20
    connection.set_tenant(live_tenant)
    (row,) = TransferAttempt.objects.all()
    assert row.status == TransferStatus.SUCCEEDED
    assert row.sends == 1  # one caller won the claim; nobody re-sent a call still under way
    (made,) = _transfers_to(account)
    assert made.id == row.gateway_ref
    assert _balance(account) == row.amount
