"""The settlement gate's sweep: an upsell queued behind a primary that settled or failed, whose
release message was lost (a broker that lost its data after the outbox handed it over), is
charged or cancelled by the periodic sweep: once, never before the primary is final, and never
while the settlement's own message may still be on its way."""

import datetime as dt

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from analytics.models import Event
from core.models import LoopFailure
from payments.models import AttemptStatus, ChargeAttempt, LedgerEntry
from storefront.services import upsell
from storefront.services.upsell import gate
from tests import gateway_helpers as gw
from tests.concurrency import each_at_once
from tests.loops_support import failing_for
from tests.upsell.helpers import buy, make_catalog, offer_token

pytestmark = pytest.mark.gateway

HOST = "t1.localhost"
UPSELL_TOTAL = 1428  # 1200 net + 19 % VAT


def _queued(client, email: str = "buyer@example.com"):
    """A paid order whose upsell was accepted while its primary was still processing: the
    accept queued the charge (CREATED) behind the gate. The primary's settlement is then
    written without its release message, as if the broker had lost it."""
    order = buy(client, email=email)
    token = offer_token(client, order)
    primary = ChargeAttempt.objects.get(purpose=f"order:{order.pk}:primary")
    ChargeAttempt.objects.filter(pk=primary.pk).update(
        status=AttemptStatus.PROCESSING, finished_at=None
    )
    assert client.post(f"/o/{order.token}/offer/accept", {"token": token}).status_code == 303
    queued = ChargeAttempt.objects.get(purpose=f"order:{order.pk}:upsell")
    assert queued.status == AttemptStatus.CREATED
    return order, primary, queued


def _primary_final(primary, status: str, *, minutes_ago: float) -> None:
    ChargeAttempt.objects.filter(pk=primary.pk).update(
        status=status, finished_at=timezone.now() - dt.timedelta(minutes=minutes_ago)
    )


def _accepted(queued, *, minutes_ago: float) -> None:
    ChargeAttempt.objects.filter(pk=queued.pk).update(
        created_at=timezone.now() - dt.timedelta(minutes=minutes_ago)
    )


def _upsell_intents(order):
    purpose = f"order:{order.pk}:upsell"
    return [
        (i.status, i.amount)
        for i in gw.payment_intents()
        if i.metadata.to_dict().get("purpose") == purpose
    ]


def _charged_once(order) -> None:
    assert _upsell_intents(order) == [("succeeded", UPSELL_TOTAL)]
    attempt = ChargeAttempt.objects.get(purpose=f"order:{order.pk}:upsell")
    assert attempt.status == AttemptStatus.SUCCEEDED and attempt.sends == 1
    assert order.lines.filter(kind="upsell").count() == 1
    assert LedgerEntry.objects.filter(line_key=f"upsell:{order.pk}").count() == 1


def test_a_queued_upsell_whose_release_was_lost_is_charged_once_by_the_sweep(
    tenant, client_for, stripe_api_base
):
    make_catalog()
    order, primary, queued = _queued(client_for(HOST))

    # Settled a minute ago, accepted long ago: the settlement's own message may be on its way.
    _accepted(queued, minutes_ago=60)
    _primary_final(primary, AttemptStatus.SUCCEEDED, minutes_ago=1)
    assert upsell.gates_release_stale() == 0
    assert _upsell_intents(order) == []

    _primary_final(primary, AttemptStatus.SUCCEEDED, minutes_ago=11)
    assert upsell.gates_release_stale() == 1
    _charged_once(order)
    assert Event.objects.filter(order_id=order.pk, name="upsell_charged").count() == 1

    assert upsell.gates_release_stale() == 0  # nothing queued any more
    upsell.release_gated_offers(order_id=order.pk)  # the lost message, delivered after all
    _charged_once(order)


def test_the_sweep_leaves_a_queued_upsell_alone_while_its_primary_is_processing(
    tenant, client_for, stripe_api_base
):
    make_catalog()
    order, _, queued = _queued(client_for(HOST))
    _accepted(queued, minutes_ago=3 * 24 * 60)  # a bank debit may take days

    assert upsell.gates_release_stale() == 0
    queued.refresh_from_db()
    assert queued.status == AttemptStatus.CREATED and queued.sends == 0
    assert _upsell_intents(order) == []


def test_the_sweep_cancels_a_queued_upsell_whose_primary_failed_without_charging_it(
    tenant, client_for, stripe_api_base
):
    make_catalog()
    order, primary, queued = _queued(client_for(HOST))
    _accepted(queued, minutes_ago=30)
    _primary_final(primary, AttemptStatus.DECLINED, minutes_ago=20)

    assert upsell.gates_release_stale() == 1
    queued.refresh_from_db()
    assert queued.status == AttemptStatus.CANCELED and queued.sends == 0
    assert _upsell_intents(order) == []
    assert not order.lines.filter(kind="upsell").exists()
    failed = Event.objects.filter(order_id=order.pk, name="upsell_failed")
    assert [e.reason for e in failed] == ["primary_failed"]


def test_one_order_that_fails_in_the_sweep_does_not_keep_the_others_queued(
    tenant, client_for, stripe_api_base, monkeypatch
):
    make_catalog()
    broken, broken_primary, broken_queued = _queued(client_for(HOST), "ann@example.com")
    fine, fine_primary, fine_queued = _queued(Client(HTTP_HOST=HOST), "bob@example.com")
    for primary, queued in ((broken_primary, broken_queued), (fine_primary, fine_queued)):
        _accepted(queued, minutes_ago=30)
        _primary_final(primary, AttemptStatus.SUCCEEDED, minutes_ago=20)

    real = gate.order_primary_attempt
    unreadable = failing_for(real, keyword="order_id", bad=broken.pk)
    monkeypatch.setattr(gate, "order_primary_attempt", unreadable)
    assert upsell.gates_release_stale() == 1
    _charged_once(fine)
    assert ChargeAttempt.objects.get(pk=broken_queued.pk).status == AttemptStatus.CREATED
    failure = LoopFailure.objects.get(loop=upsell.LOOP_GATE_SWEEP)
    assert (failure.schema_name, failure.record_id) == (connection.schema_name, str(broken.pk))

    monkeypatch.setattr(gate, "order_primary_attempt", real)
    assert upsell.gates_release_stale() == 1
    _charged_once(broken)
    assert not LoopFailure.objects.filter(loop=upsell.LOOP_GATE_SWEEP).exists()


def test_two_sweeps_and_the_late_message_at_once_charge_the_queued_upsell_once(
    live_tenant, stripe_api_base
):
    make_catalog()
    order, primary, queued = _queued(Client(HTTP_HOST=HOST))
    _accepted(queued, minutes_ago=30)
    _primary_final(primary, AttemptStatus.SUCCEEDED, minutes_ago=20)
    _, errors = each_at_once(
        [
            upsell.gates_release_stale,
            upsell.gates_release_stale,
            lambda: upsell.release_gated_offers(order_id=order.pk),
        ],
        tenant=live_tenant,
    )

    assert errors == []
    _charged_once(order)
