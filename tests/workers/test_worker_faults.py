"""Task discipline with real Celery workers on real Redis: a worker SIGKILLed in the middle of
a payments task loses nothing and duplicates nothing once it is back, and work enqueued while
the broker is down waits in the outbox and runs exactly once when the broker returns."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time

import psutil
import pytest
from django.db import connection
from django.utils import timezone

from analytics.models import Event
from config.celery_app import app
from core.models import OutboxMessage
from core.tasks import drain_outbox
from payments import services as payments
from payments.gateway import PaymentResult, PaymentStatus, get_gateway, use_gateway
from payments.models import AttemptStatus, ChargeAttempt, LedgerEntry, WebhookEvent
from storefront.models import Invoice, OrderStatus
from tests import gateway_helpers as gw
from tests.payments import helpers as h
from tests.upsell.helpers import PendingPrimaryGateway, buy, make_catalog, offer_token
from tests.worker_support import broker_unreachable
from tests.workers.support import HoldingProxy, start_worker, stop, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.gateway, pytest.mark.slow]
HOST = "t1.localhost"


@pytest.fixture
def proxy(stripe_api_base):
    proxy = HoldingProxy(stripe_api_base)
    yield proxy
    proxy.close()


@pytest.fixture
def workers(live_tenant, redis_url, tmp_path, stripe_api_base, proxy, smtp):
    """Start real workers whose gateway calls go through `proxy`; all stopped afterwards."""
    started = []

    def start(**options):
        proc = start_worker(
            log_path=tmp_path / f"worker-{len(started)}.log",
            redis_url=redis_url,
            stripe_api_base=proxy.url,
            smtp_port=smtp.port,
            **options,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        stop(proc)


def _log(worker) -> str:
    return worker.log_path.read_text(errors="replace")


def _in_flight_payment(client_for, monkeypatch):
    """An order charged at the gateway whose outcome we never recorded (a crash)."""
    _, bump = h.catalog()
    order = h.checkout_started(client_for(HOST), bump)
    h.pay_and_crash(order, monkeypatch)
    attempt = ChargeAttempt.objects.get(reference=order.reference)
    assert attempt.status == AttemptStatus.IN_FLIGHT and attempt.gateway_ref == ""
    (intent,) = gw.payment_intents()
    return order, attempt, intent


def _recorded_once(order, attempt, intent) -> None:
    attempt.refresh_from_db()
    order.refresh_from_db()
    assert attempt.status == AttemptStatus.SUCCEEDED and attempt.sends == 1
    assert attempt.gateway_ref == intent.id
    assert order.status == OrderStatus.PAID
    assert sorted(
        LedgerEntry.objects.filter(reference=order.reference).values_list("kind", "amount")
    ) == sorted([("charge", h.CORE_TOTAL), ("charge", h.BUMP_TOTAL)])
    assert Event.objects.filter(order_id=order.pk, name="checkout_completed").count() == 1
    assert (
        OutboxMessage.objects.filter(
            task_name="storefront.send_receipt", kwargs={"order_id": order.pk}
        ).count()
        == 1
    )
    assert len(gw.payment_intents()) == 1


def test_a_worker_child_killed_inside_process_webhook_event_is_replaced_and_the_event_applied_once(
    workers, proxy, live_tenant, client_for, monkeypatch
):
    order, attempt, intent = _in_flight_payment(client_for, monkeypatch)
    proxy.hold_next(f"/v1/payment_intents/{intent.id}".encode())
    worker = workers(pool="prefork")

    delivered = h.deliver(
        client_for(HOST),
        h.event("evt_kill", "payment_intent.succeeded", "payment_intent", intent.id),
    )
    assert delivered.status_code == 200
    wait_for(proxy.held.is_set, "the task to be inside its gateway call", worker)
    (child,) = psutil.Process(worker.pid).children()
    os.kill(child.pid, signal.SIGKILL)  # the pool process dies mid-task
    proxy.release()
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.IN_FLIGHT  # nothing was recorded by the dead one

    # reject_on_worker_lost puts the message back; the parent's new child runs it again.
    wait_for(
        lambda: WebhookEvent.objects.filter(
            event_id="evt_kill", processed_at__isnull=False
        ).exists(),
        "the redelivered event to be processed",
        worker,
    )
    time.sleep(1.0)  # a third delivery would land now
    assert "WorkerLostError" in _log(worker)
    assert _log(worker).count("payments.process_webhook_event[") >= 2
    _recorded_once(order, attempt, intent)
    assert WebhookEvent.objects.get(event_id="evt_kill").deliveries == 1


def test_a_worker_killed_inside_reconcile_and_restarted_reconciles_once(
    workers, proxy, live_tenant, client_for, monkeypatch
):
    order, attempt, intent = _in_flight_payment(client_for, monkeypatch)
    ChargeAttempt.objects.filter(pk=attempt.pk).update(
        sent_at=timezone.now() - dt.timedelta(minutes=10)
    )
    proxy.hold_next(b"/v1/payment_intents")
    worker = workers(visibility_timeout=3)

    app.send_task("payments.reconcile", kwargs={}, headers={"_schema_name": "t1"})
    wait_for(proxy.held.is_set, "reconcile to be inside its gateway call", worker)
    worker.kill()  # SIGKILL: the whole worker, mid-task, message unacknowledged
    worker.wait(10)
    proxy.release()
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.IN_FLIGHT

    restarted = workers(visibility_timeout=3, purge=False)
    wait_for(
        lambda: ChargeAttempt.objects.get(pk=attempt.pk).status == AttemptStatus.SUCCEEDED,
        "the redelivered reconcile to record the payment",
        restarted,
    )
    wait_for(
        lambda: "payments.reconcile[" in _log(restarted) and " succeeded in " in _log(restarted),
        "the reconcile task to finish",
        restarted,
    )
    time.sleep(1.0)
    _recorded_once(order, attempt, intent)


def test_work_enqueued_while_the_broker_is_down_runs_exactly_once_after_it_returns(
    workers, live_tenant, client_for, smtp, stripe_api_base
):
    make_catalog()
    slow_bank = PendingPrimaryGateway(get_gateway())
    use_gateway(slow_bank)
    try:
        client = client_for(HOST)
        order = buy(client, pay=False)
        paid = client.post(f"/o/{order.token}/pay", {"setup_intent": order.setup_ref})
        assert paid.json()["status"] == "processing"
        accepted = client.post(
            f"/o/{order.token}/offer/accept", {"token": offer_token(client, order)}
        )
        assert accepted.status_code == 303
    finally:
        use_gateway(None)
    upsell = ChargeAttempt.objects.get(purpose=f"order:{order.pk}:upsell")
    assert upsell.status == AttemptStatus.CREATED  # queued behind the settlement gate
    worker = workers()
    primary = ChargeAttempt.objects.get(purpose=f"order:{order.pk}:primary")

    with broker_unreachable():  # the primary settles while the broker is down
        payments.attempt_record_result(
            attempt_id=primary.pk,
            result=PaymentResult(
                PaymentStatus.SUCCEEDED, payment_ref="pi_slow_primary", amount=primary.money
            ),
        )
        assert drain_outbox() == 0
    waiting = OutboxMessage.objects.filter(
        task_name__in=["storefront.send_receipt", "storefront.release_gated_offers"],
        kwargs={"order_id": order.pk},
    )
    assert sorted(waiting.values_list("task_name", flat=True)) == [
        "storefront.release_gated_offers",
        "storefront.send_receipt",
    ]
    assert all(m.dispatched_at is None and m.last_error for m in waiting)
    time.sleep(0.5)
    assert smtp.messages == [] and gw.payment_intents() == []
    upsell.refresh_from_db()
    assert upsell.status == AttemptStatus.CREATED

    assert drain_outbox() >= 2  # the broker is back

    wait_for(lambda: len(smtp.to("buyer@example.com")) == 1, "the receipt email", worker)
    wait_for(
        lambda: ChargeAttempt.objects.get(pk=upsell.pk).status == AttemptStatus.SUCCEEDED,
        "the gated upsell to be charged",
        worker,
    )
    # The upsell's own receipt follows unless the order's receipt went out after the upsell
    # and carried its invoice already: either way each invoice is emailed once.
    wait_for(
        lambda: (
            Invoice.objects.filter(order=order).count() == 2
            and not Invoice.objects.filter(order=order, emailed_at__isnull=True).exists()
        ),
        "both invoices to be emailed",
        worker,
    )
    assert drain_outbox() == 0
    time.sleep(1.5)  # anything sent twice would arrive now
    emails = smtp.to("buyer@example.com")
    assert 1 <= len(emails) <= 2
    assert all("receipt" in m["Subject"].lower() for m in emails)
    attached = sorted(
        part.get_filename()
        for m in emails
        for part in m.walk()
        if part.get_content_type() == "application/pdf"
    )
    numbers = Invoice.objects.filter(order=order).order_by("number")
    assert attached == [f"{i.display_number}.pdf" for i in numbers]
    (intent,) = gw.payment_intents()
    assert intent.metadata["purpose"] == f"order:{order.pk}:upsell" and intent.status == "succeeded"
    upsell.refresh_from_db()
    assert upsell.sends == 1
    assert order.lines.filter(kind="upsell").count() == 1
    assert waiting.count() == 2
    assert all(m.dispatched_at is not None for m in waiting.all())
    assert connection.schema_name == "t1"
