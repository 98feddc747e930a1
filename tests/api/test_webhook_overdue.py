"""Partner webhook deliveries whose task was lost (partners.services.webhook_deliveries_overdue,
on beat): a delivery queued into a broker that then lost its data, or claimed by a worker that
was killed during the attempt, is still delivered once, to a real local receiver, after its
time has passed by DELIVERY_OVERDUE, never before, and never twice."""

import datetime as dt

from django.utils import timezone

from core.models import LoopFailure
from partners import services
from partners.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from tests.loops_support import failing_for


def _lost_delivery(url: str, secret: str, event_id: str) -> WebhookDelivery:
    """A delivery whose task never arrives: the row as webhook_dispatch commits it, no message."""
    sub, _ = WebhookSubscription.objects.get_or_create(
        url=url, defaults={"event_types": ["refund_issued"], "secret": secret}
    )
    return WebhookDelivery.objects.create(
        subscription=sub,
        event_id=event_id,
        event_name="refund_issued",
        payload={"order_id": 8},
        next_attempt_at=timezone.now(),
    )


def _due(delivery: WebhookDelivery, ago: dt.timedelta) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - ago)


def test_a_delivery_whose_task_was_lost_is_sent_once_when_overdue_and_not_before(receiver, tenant):
    secret = services.webhook_secret_new()
    url, handler = receiver(200, secret)
    delivery = _lost_delivery(url, secret, "evt_lost")

    _due(delivery, services.DELIVERY_OVERDUE - dt.timedelta(seconds=30))
    assert services.webhook_deliveries_overdue() == 0  # its task may still be on its way
    assert handler.received == []

    _due(delivery, services.DELIVERY_OVERDUE + dt.timedelta(seconds=30))
    assert services.webhook_deliveries_overdue() == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 1
    ((verified, _, headers),) = handler.received
    assert verified and headers["X-Storefront-Delivery"] == "evt_lost"

    assert services.webhook_deliveries_overdue() == 0
    assert services.webhook_deliver(delivery_id=delivery.pk) is None  # the task, late: nothing
    assert len(handler.received) == 1


def test_a_delivery_claimed_by_a_worker_that_died_is_sent_once_its_lease_has_run_out(
    receiver, tenant
):
    secret = services.webhook_secret_new()
    url, handler = receiver(200, secret)
    delivery = _lost_delivery(url, secret, "evt_killed")
    assert services._claim(delivery.pk) is not None  # the worker's claim, then SIGKILL

    assert services.webhook_deliveries_overdue() == 0  # leased
    assert handler.received == []
    _due(delivery, services.DELIVERY_OVERDUE + dt.timedelta(seconds=1))
    assert services.webhook_deliveries_overdue() == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 1
    assert len(handler.received) == 1


def test_an_overdue_delivery_to_a_failing_receiver_goes_back_to_its_backoff(receiver, tenant):
    secret = services.webhook_secret_new()
    url, handler = receiver(503, secret)
    delivery = _lost_delivery(url, secret, "evt_failing")
    _due(delivery, dt.timedelta(hours=1))

    assert services.webhook_deliveries_overdue() == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1
    assert delivery.last_status_code == 503 and delivery.next_attempt_at > timezone.now()
    assert services.webhook_deliveries_overdue() == 0  # its retry is scheduled, not overdue
    assert len(handler.received) == 1


def test_one_delivery_that_fails_does_not_stop_the_others(receiver, tenant, monkeypatch):
    secret = services.webhook_secret_new()
    url, handler = receiver(200, secret)
    broken, fine = (_lost_delivery(url, secret, f"evt_{n}") for n in ("broken", "fine"))
    for delivery in (broken, fine):
        _due(delivery, dt.timedelta(hours=1))
    real = services.webhook_deliver
    monkeypatch.setattr(
        services, "webhook_deliver", failing_for(real, keyword="delivery_id", bad=broken.pk)
    )

    assert services.webhook_deliveries_overdue() == 1
    assert [h["X-Storefront-Delivery"] for _, _, h in handler.received] == ["evt_fine"]
    failure = LoopFailure.objects.get(loop=services.LOOP_OVERDUE)
    assert failure.record_id == str(broken.pk)

    monkeypatch.setattr(services, "webhook_deliver", real)
    assert services.webhook_deliveries_overdue() == 1
    assert len(handler.received) == 2
    assert not LoopFailure.objects.filter(loop=services.LOOP_OVERDUE).exists()


def test_a_sweep_sends_at_most_its_limit_oldest_first(receiver, tenant):
    secret = services.webhook_secret_new()
    url, handler = receiver(200, secret)
    for n in range(3):
        _due(_lost_delivery(url, secret, f"evt_{n}"), dt.timedelta(hours=3 - n))

    assert services.webhook_deliveries_overdue(limit=2) == 2
    sent = [h["X-Storefront-Delivery"] for _, _, h in handler.received]
    assert sent == ["evt_0", "evt_1"]
    assert services.webhook_deliveries_overdue(limit=2) == 1
