"""Everything that can happen to one paid order at once, from many threads: the buyer's
one-click accept (twice), partial refunds of the core line, a dispute on the primary payment
lost at the gateway, the primary's transfer to the creator, beat's transfer reconciliation and
the settlement gate's sweep and release. Whatever order they land in: no step fails on a lock
(no deadlock), the upsell is charged once, the ledger holds what the gateway charged, and the
creator's connected account holds exactly each charge's share of what the store kept."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.db import connection
from django.test import Client

from core.money import Money
from payments import transfer_sweeps, transfers
from payments.disputes import dispute_sync
from payments.models import AttemptStatus, ChargeAttempt, LedgerEntry, LedgerKind, TransferAttempt
from payments.services import refund_create
from payments.transfers import creator_share, transfer_for_charge
from storefront.models import Order
from storefront.services import upsell
from storefront.services.upsell.gate import gates_release_stale
from tests import gateway_helpers as gw
from tests.concurrency import in_threads
from tests.payments import helpers as h
from tests.upsell.helpers import buy, make_catalog, offer_token

pytestmark = pytest.mark.gateway

HOST = "t1.localhost"
DISPUTED = 1200
REFUNDED = 500


def test_a_storm_on_one_paid_order_leaves_the_money_exact(
    live_tenant, disputing, fee_and_routing_reset
):
    account = h.connected_account()
    make_catalog()
    client = Client(HTTP_HOST=HOST)
    order = buy(client)
    token = offer_token(client, order)
    primary = ChargeAttempt.objects.get(purpose=f"order:{order.pk}:primary")
    core = order.lines.get(kind="core").line_key
    disputing.says("dp_storm", primary, "lost", amount=DISPUTED)
    addresses = itertools.count(1)

    def accept():
        buyer = Client(HTTP_HOST=HOST, REMOTE_ADDR=f"203.0.113.{next(addresses)}")
        buyer.cookies = client.cookies
        return buyer.post(f"/o/{order.token}/offer/accept", {"token": token}).status_code

    def refund(n):
        def run():
            made = refund_create(
                reference=order.reference,
                line_key=core,
                amount=Money(REFUNDED, "USD"),
                idempotency_key=f"storm-refund-{n}",
            )
            return transfers.reverse_for_cause(kind=LedgerKind.REFUND, gateway_ref=made.gateway_ref)

        return run

    def lose():
        dispute_sync(dispute_ref="dp_storm")
        return transfers.reverse_for_cause(kind=LedgerKind.CHARGEBACK, gateway_ref="dp_storm")

    steps = [
        accept,
        accept,
        refund(1),
        refund(2),
        lose,
        lose,
        lambda: transfer_for_charge(charge_attempt_id=primary.pk),
        lambda: transfer_for_charge(charge_attempt_id=primary.pk),
        transfer_sweeps.transfers_reconcile_open,
        lambda: gates_release_stale(older_than=dt.timedelta(0)),
        lambda: upsell.release_gated_offers(order_id=order.pk),
    ]
    turns = itertools.count()
    results, errors = in_threads(
        len(steps), lambda: steps[next(turns) % len(steps)](), tenant=live_tenant
    )
    assert errors == []
    connection.set_tenant(live_tenant)
    assert sorted(r for r in results if isinstance(r, int) and r >= 300)[:1] == [303]

    # What the worker does afterwards: the upsell's transfer, any reversal still queued.
    charges = list(ChargeAttempt.objects.filter(reference=order.reference))
    upsells = [c for c in charges if c.purpose.endswith(":upsell")]
    assert len(upsells) == 1 and upsells[0].status == AttemptStatus.SUCCEEDED
    assert upsells[0].sends == 1
    for charge in charges:
        transfer_for_charge(charge_attempt_id=charge.pk)
    transfers.reverse_for_cause(kind=LedgerKind.CHARGEBACK, gateway_ref="dp_storm")
    intents = [
        i for i in gw.payment_intents() if i.metadata.to_dict().get("purpose") == upsells[0].purpose
    ]
    assert [i.status for i in intents] == ["succeeded"]
    assert Order.objects.get(pk=order.pk).lines.filter(kind="upsell").count() == 1
    gateway_charged = sorted((c.gateway_ref, c.amount) for c in charges)
    ledger = LedgerEntry.objects.filter(reference=order.reference, kind=LedgerKind.CHARGE)
    assert sorted(ledger.values_list("gateway_ref").distinct()) == sorted(
        {(ref,) for ref, _ in gateway_charged}
    )
    expected = 0
    for charge in charges:
        transfer = TransferAttempt.objects.get(charge_attempt=charge)
        taken = REFUNDED * 2 + DISPUTED if charge.pk == primary.pk else 0
        expected += creator_share(gross=charge.amount, fee=transfer.fee, taken_back=taken)
    assert h.connected_balance(account) == expected
