"""Outbound webhooks against a real local HTTP receiver that verifies the signature."""
import datetime as dt
import http.server
import threading

import pytest
from django.utils import timezone

from core.models import OutboxMessage
from partners import services
from partners.models import DeliveryStatus, WebhookDelivery, WebhookSubscription


class _Receiver(http.server.BaseHTTPRequestHandler):
    status = 200
    secret = ""
    received: list = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ok = services.webhook_verify(
            secret=self.secret, timestamp=self.headers[services.TIMESTAMP_HEADER],
            body=body, signature=self.headers[services.SIGNATURE_HEADER])
        type(self).received.append((ok, body, dict(self.headers)))
        self.send_response(self.status if ok else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    def start(status: int, secret: str):
        handler = type("Handler", (_Receiver,), {"status": status, "secret": secret,
                                                  "received": []})
        server = http.server.HTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/hook", handler

    servers: list = []
    yield start
    for server in servers:
        server.shutdown()


def _subscribe(url, secret, events=("refund_issued",)):
    return WebhookSubscription.objects.create(url=url, event_types=list(events), secret=secret)


def test_a_delivery_is_signed_and_the_receiver_verifies_it(receiver, tenant):
    secret = services.webhook_secret_new()
    url, handler = receiver(200, secret)
    sub = _subscribe(url, secret)
    [delivery] = services.webhook_dispatch("refund_issued", {"order_id": 7, "amount": 900})
    assert OutboxMessage.objects.filter(task_name="partners.webhook_deliver").exists()
    done = services.webhook_deliver(delivery_id=delivery.pk)
    assert done.status == DeliveryStatus.SUCCEEDED and done.attempts == 1
    [(verified, body, headers)] = handler.received
    assert verified and b'"order_id":7' in body
    assert headers["X-Storefront-Event"] == "refund_issued"
    # Run twice (a redelivered task): nothing is posted again.
    assert services.webhook_deliver(delivery_id=delivery.pk) is None
    assert len(handler.received) == 1
    assert sub.deliveries.count() == 1


def test_a_signature_with_another_secret_or_an_old_timestamp_does_not_verify():
    body = b'{"x":1}'
    sig = services.webhook_sign(secret="whsk_a", timestamp=1_000_000, body=body)
    assert services.webhook_verify(secret="whsk_a", timestamp="1000000", body=body,
                                   signature=sig, now=1_000_010)
    assert not services.webhook_verify(secret="whsk_b", timestamp="1000000", body=body,
                                       signature=sig, now=1_000_010)
    assert not services.webhook_verify(secret="whsk_a", timestamp="1000000", body=body,
                                       signature=sig, now=1_000_000 + 3600)


def test_a_failing_receiver_is_retried_with_backoff_then_marked_failed(receiver, tenant):
    secret = services.webhook_secret_new()
    url, handler = receiver(500, secret)
    _subscribe(url, secret)
    [delivery] = services.webhook_dispatch("refund_issued", {"order_id": 8})
    delays = []
    for attempt in range(1, services.MAX_ATTEMPTS + 1):
        result = services.webhook_deliver(delivery_id=delivery.pk)
        assert result.attempts == attempt and result.last_status_code == 500
        if attempt < services.MAX_ATTEMPTS:
            assert result.status == DeliveryStatus.PENDING
            # Not due yet: a task arriving early does nothing.
            assert services.webhook_deliver(delivery_id=delivery.pk) is None
            delays.append((result.next_attempt_at - timezone.now()).total_seconds())
            WebhookDelivery.objects.filter(pk=delivery.pk).update(
                next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
    assert result.status == DeliveryStatus.FAILED
    assert len(handler.received) == services.MAX_ATTEMPTS
    assert all(verified for verified, _, _ in handler.received)
    assert delays == sorted(delays) and delays[-1] > delays[0] * 4  # exponential backoff
    assert OutboxMessage.objects.filter(
        task_name="partners.webhook_deliver", available_at__gt=timezone.now()).count() >= 1
    # Redelivery from the admin starts over and succeeds once the receiver is fixed.
    handler.status = 200
    services.webhook_redeliver(delivery=result)
    assert services.webhook_deliver(delivery_id=delivery.pk).status == DeliveryStatus.SUCCEEDED


def test_committed_events_reach_subscribers_through_the_analytics_listener(
        receiver, live_partners):
    from django.db import transaction

    from analytics.services import event_append

    secret = services.webhook_secret_new()
    url, handler = receiver(200, secret)
    _subscribe(url, secret, events=("checkout_completed",))
    with transaction.atomic():
        event = event_append("checkout_completed", order_id=42, amount=4900, currency="USD")
        event_append("page_viewed")  # not subscribed
        assert not WebhookDelivery.objects.exists()  # nothing before the commit
    delivery = WebhookDelivery.objects.get()
    assert delivery.event_name == "checkout_completed" and delivery.event_id == f"evt_{event.pk}"
    assert services.webhook_deliver(delivery_id=delivery.pk).status == DeliveryStatus.SUCCEEDED
