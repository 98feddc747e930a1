"""Gateway webhooks: signed, stored once, processed by re-reading the object; replays,
reordering and twin events leave one consistent order and ledger."""

import random
import time

import pytest

from analytics.models import Event
from core.money import Money
from payments.gateway import DisputeResult
from payments.models import AttemptStatus, ChargeAttempt, LedgerEntry, Refund, WebhookEvent
from storefront.models import OrderStatus
from tests import gateway_helpers as gw
from tests.payments import helpers as h

pytestmark = pytest.mark.gateway


@pytest.fixture
def gateway(stripe_api_base):
    yield from h.disputing_gateway(stripe_api_base)


@pytest.fixture
def shop(tenant):
    return h.catalog()


def _line_ledger(order) -> dict:
    totals = {}
    for entry in LedgerEntry.objects.filter(reference=order.reference):
        line = "core" if entry.line_key == f"line:{order.lines.get(kind='core').pk}" else "bump"
        totals[(line, entry.kind)] = totals.get((line, entry.kind), 0) + entry.amount
    return totals


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_each_event_three_times_in_random_order_plus_twins_leaves_one_consistent_order(
    seed, tenant, shop, gateway, client_for, monkeypatch
):
    _, bump = shop
    client = client_for("t1.localhost")
    order = h.checkout_started(client, bump)
    h.pay_and_crash(order, monkeypatch)  # charged at the gateway, nothing recorded
    attempt = ChargeAttempt.objects.get(reference=order.reference)
    assert attempt.status == AttemptStatus.IN_FLIGHT and attempt.gateway_ref == ""
    (intent,) = gw.payment_intents()
    # At the gateway: a refund made in the dashboard, then a dispute for the rest.
    refund = h.sdk().v1.refunds.create(params={"payment_intent": intent.id, "amount": 1000})
    gateway.disputes["dp_1"] = DisputeResult(
        dispute_ref="dp_1",
        payment_ref=intent.id,
        amount=Money(h.ORDER_TOTAL - 1000, "USD"),
        status="needs_response",
        reason="fraudulent",
    )
    events = [
        h.event("evt_pi", "payment_intent.succeeded", "payment_intent", intent.id),
        h.event("evt_pi_twin", "payment_intent.succeeded", "payment_intent", intent.id),
        h.event(
            "evt_ch",
            "charge.succeeded",
            "charge",
            intent.latest_charge
            if isinstance(intent.latest_charge, str)
            else intent.latest_charge.id,
        ),
        h.event("evt_refunded", "charge.refunded", "charge", refund.charge),
        h.event("evt_refund_twin", "refund.created", "refund", refund.id),
        h.event("evt_dp", "charge.dispute.created", "dispute", "dp_1"),
    ]
    rng = random.Random(seed)
    deliveries = events * 3
    rng.shuffle(deliveries)
    for evt in deliveries:
        response = h.deliver(client, evt)
        assert response.status_code == 200, response.content
        if rng.random() < 0.5:  # the worker catches up at random points
            h.run_payment_tasks(tenant)
    h.run_payment_tasks(tenant)

    order.refresh_from_db()
    assert order.status == OrderStatus.REFUNDED
    assert _line_ledger(order) == {
        ("core", "charge"): h.CORE_TOTAL,
        ("bump", "charge"): h.BUMP_TOTAL,
        ("core", "refund"): 845,
        ("bump", "refund"): 155,  # 1000 in proportion to the lines
        ("core", "chargeback"): 4986,
        ("bump", "chargeback"): 916,
    }
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.SUCCEEDED and attempt.gateway_ref == intent.id
    assert Refund.objects.filter(gateway_ref=refund.id).count() == 2
    names = list(Event.objects.filter(order_id=order.pk).values_list("name", flat=True))
    assert names.count("checkout_completed") == 1
    assert names.count("refund_issued") == 2 and names.count("chargeback_opened") == 2
    assert WebhookEvent.objects.count() == len(events)
    assert sorted(WebhookEvent.objects.values_list("deliveries", flat=True)) == [3] * len(events)
    assert not WebhookEvent.objects.filter(processed_at__isnull=True).exists()


def test_a_failed_event_arriving_after_success_does_not_unpay_the_order(
    tenant, shop, gateway, client_for, monkeypatch
):
    _, bump = shop
    client = client_for("t1.localhost")
    order = h.checkout_started(client, bump)
    h.pay_and_crash(order, monkeypatch)
    (intent,) = gw.payment_intents()
    h.deliver(client, h.event("evt_ok", "payment_intent.succeeded", "payment_intent", intent.id))
    # A stale or forged "failed" claim about the same payment: the re-read says succeeded.
    h.deliver(
        client, h.event("evt_bad", "payment_intent.payment_failed", "payment_intent", intent.id)
    )
    h.run_payment_tasks(tenant)
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert LedgerEntry.objects.filter(reference=order.reference, kind="charge").count() == 2


def test_the_platform_domain_endpoint_stores_the_event_in_the_named_creators_schema(
    tenant, other_tenant, shop, gateway, client_for, monkeypatch
):
    _, bump = shop
    order = h.checkout_started(client_for("t1.localhost"), bump)
    h.pay_and_crash(order, monkeypatch)
    (intent,) = gw.payment_intents()
    response = h.deliver(
        client_for("localhost"),
        h.event("evt_pub", "payment_intent.succeeded", "payment_intent", intent.id),
        path="/webhooks/stripe/t1/",
    )
    assert response.status_code == 200, response.content
    h.run_payment_tasks(tenant)
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    from django_tenants.utils import tenant_context

    with tenant_context(other_tenant):
        assert not WebhookEvent.objects.exists()


def test_an_unknown_creator_on_the_platform_endpoint_is_404(tenant, client_for):
    response = h.deliver(
        client_for("localhost"),
        h.event("evt_x", "payment_intent.succeeded", "payment_intent", "pi_x"),
        path="/webhooks/stripe/nobody/",
    )
    assert response.status_code == 404
    from django.db import connection

    connection.set_tenant(tenant)
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize("how", ["missing", "wrong_secret", "stale", "tampered", "not_json"])
def test_a_bad_signature_is_refused_with_400_and_nothing_is_stored(tenant, client_for, how):
    from core.models import OutboxMessage

    evt = h.event("evt_bad_sig", "payment_intent.succeeded", "payment_intent", "pi_123")
    body, header = h.signed(evt)
    if how == "missing":
        header = ""
    elif how == "wrong_secret":
        body, header = h.signed(evt, secret="whsec_someone_else")
    elif how == "stale":
        body, header = h.signed(evt, timestamp=int(time.time()) - 3600)
    elif how == "tampered":
        body = body.replace(b"pi_123", b"pi_999")
    elif how == "not_json":
        body, header = b"not json", h.signed({})[1]
    response = client_for("t1.localhost").post(
        "/webhooks/stripe/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=header,
    )
    assert response.status_code == 400
    assert response.json()["error"]
    assert not WebhookEvent.objects.exists()
    assert not OutboxMessage.objects.filter(task_name="payments.process_webhook_event").exists()


def test_a_webhook_get_is_not_allowed(tenant, client_for):
    assert client_for("t1.localhost").get("/webhooks/stripe/").status_code == 405


def test_a_duplicated_processing_task_records_nothing_twice(
    tenant, shop, gateway, client_for, monkeypatch
):
    _, bump = shop
    client = client_for("t1.localhost")
    order = h.checkout_started(client, bump)
    h.pay_and_crash(order, monkeypatch)
    (intent,) = gw.payment_intents()
    h.sdk().v1.refunds.create(params={"payment_intent": intent.id, "amount": 500})
    h.deliver(client, h.event("evt_1", "payment_intent.succeeded", "payment_intent", intent.id))
    charge = gw.payment_intents()[0].latest_charge
    charge_id = charge if isinstance(charge, str) else charge.id
    h.deliver(client, h.event("evt_2", "charge.refunded", "charge", charge_id))
    from core.models import OutboxMessage
    from payments.tasks import process_webhook_event
    from payments.webhooks import webhook_event_process

    messages = list(OutboxMessage.objects.filter(task_name="payments.process_webhook_event"))
    assert len(messages) == 2
    for message in messages + messages:  # the broker delivered every task twice
        process_webhook_event.apply(kwargs=message.kwargs, throw=True)
    # ...and a worker that did not see processed_at yet runs the whole thing again.
    WebhookEvent.objects.update(processed_at=None)
    for message in messages:
        webhook_event_process(**message.kwargs)
    assert LedgerEntry.objects.filter(reference=order.reference, kind="charge").count() == 2
    assert LedgerEntry.objects.filter(reference=order.reference, kind="refund").count() == 2
    assert (
        sum(
            LedgerEntry.objects.filter(reference=order.reference, kind="refund").values_list(
                "amount", flat=True
            )
        )
        == 500
    )
    names = list(Event.objects.filter(order_id=order.pk).values_list("name", flat=True))
    assert names.count("checkout_completed") == 1 and names.count("refund_issued") == 2
