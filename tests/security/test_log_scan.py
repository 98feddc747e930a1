"""Issue 11.5: a full funnel run with the app's own log handler at DEBUG writes no card
number, gateway key, client secret, partner API key or webhook signing secret anywhere.

The configured console handler (settings.LOGGING, with core.logging.RedactSecretsFilter) is
pointed at a buffer; every logger (the stripe SDK's included) is opened to DEBUG. The scan
uses its own patterns, not the filter's, and also looks for each secret's literal value."""

from __future__ import annotations

import datetime as dt
import io
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from core.logging import RedactSecretsFilter
from partners import services as partners
from partners.models import ApiKey, WebhookDelivery, WebhookSubscription
from payments.models import ChargeAttempt, WebhookEvent
from payments.tasks import process_webhook_event
from storefront.services import followups
from tests import gateway_helpers as gw
from tests.followups.conftest import smtp, smtp_mail  # noqa: F401 - the real SMTP server
from tests.followups.smtp import text_of
from tests.payments import helpers as h
from tests.upsell.helpers import buy, make_catalog, offer_token

pytestmark = [pytest.mark.gateway]
HOST = "t1.localhost"

_DIGIT_RUN = re.compile(r"(?<![\dA-Za-z])\d(?:[ -]?\d){12,18}(?![\dA-Za-z])")
_SECRET_SHAPES = {
    "gateway key": re.compile(r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]"),
    "webhook signing secret": re.compile(r"whsec_[A-Za-z0-9]"),
    "client secret": re.compile(r"(?:pi|seti)_[A-Za-z0-9]+_secret_[A-Za-z0-9]"),
    "partner API key": re.compile(r"sfk_[A-Za-z0-9]{8}_[A-Za-z0-9_-]{8}"),
    "partner webhook secret": re.compile(r"whsk_[A-Za-z0-9_-]{8}"),
}


def _luhn(digits: str) -> bool:
    checksum = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        checksum += d - 9 if d > 9 else d
    return checksum % 10 == 0


def _cards(line: str) -> list[str]:
    runs = (re.sub(r"\D", "", m.group(0)) for m in _DIGIT_RUN.finditer(line))
    return [d for d in runs if 13 <= len(d) <= 19 and _luhn(d)]


@pytest.fixture
def debug_log():
    """The configured console handler, writing to a buffer, with every logger at DEBUG."""
    (handler,) = [
        h
        for h in logging.getLogger().handlers
        if any(isinstance(f, RedactSecretsFilter) for f in h.filters)
    ]
    stream = io.StringIO()
    old_stream = handler.setStream(stream)
    loggers = [logging.getLogger()] + [
        logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
    ]
    old_levels = {lg: lg.level for lg in loggers}
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        for lg, level in old_levels.items():
            lg.setLevel(level)
        handler.setStream(old_stream)


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def partner_receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_a_full_funnel_at_debug_level_logs_no_card_number_key_or_secret(
    live_tenant,
    debug_log,
    client_for,
    smtp_mail,  # noqa: F811
    partner_receiver,
    stripe_api_base,  # noqa: F811
):
    issued = partners.api_key_create(name="Zapier", scope=ApiKey.Scope.WRITE)
    subscription = WebhookSubscription.objects.create(
        url=partner_receiver, event_types=["*"], secret=partners.webhook_secret_new()
    )
    _, bump, _, _ = make_catalog()
    client = client_for(HOST)
    logging.getLogger("storefront.test").debug("funnel starts")

    # Checkout with the bump, then the one-click upsell.
    order = buy(client, bump=bump.pk)
    accepted = client.post(f"/o/{order.token}/offer/accept", {"token": offer_token(client, order)})
    assert accepted.status_code == 303
    assert order.lines.filter(kind="upsell").count() == 1

    # A refund of the bump line through the partner API, with the key and an Idempotency-Key.
    api = client_for(HOST)
    refunded = api.post(
        f"/api/v1/orders/{order.pk}/refunds/",
        {"line_id": order.lines.get(kind="bump").pk, "reason": "asked"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {issued.token}",
        HTTP_IDEMPOTENCY_KEY="log-scan-1",
    )
    assert refunded.status_code == 201, refunded.content
    rejected = api.get("/api/v1/orders/", HTTP_AUTHORIZATION=f"Bearer {issued.token}x")
    assert rejected.status_code in (401, 403)

    # A signed gateway webhook, processed by re-reading the payment.
    primary = ChargeAttempt.objects.get(purpose=f"order:{order.pk}:primary")
    evt = h.event("evt_scan", "payment_intent.succeeded", "payment_intent", primary.gateway_ref)
    assert h.deliver(client, evt).status_code == 200
    body, header = h.signed(evt, secret="whsec_wrong_secret_for_the_scan")
    forged = client.post(
        "/webhooks/stripe/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=header,
    )
    assert forged.status_code == 400
    stored = WebhookEvent.objects.get(event_id="evt_scan")  # the worker's part, run here
    assert process_webhook_event.apply(kwargs={"webhook_event_id": stored.pk}, throw=True).get()

    # A second buyer declines the upsell, gets the follow-up email and accepts from it.
    second = buy(client, email="second@example.com")
    declined = client.post(
        f"/o/{second.token}/offer/decline", {"token": offer_token(client, second)}
    )
    assert declined.status_code in (302, 303)
    assert followups.followups_send_due(now=timezone.now() + dt.timedelta(hours=25)) == 1
    link = re.search(r"http://t1\.localhost(/f/\S+)", text_of(smtp_mail.messages[-1])).group(1)
    assert client.post(f"{link}/accept").status_code == 303
    assert second.lines.filter(kind="cross_sell").count() == 1

    # The partner's signed webhooks for all of it.
    for delivery in WebhookDelivery.objects.filter(subscription=subscription):
        partners.webhook_deliver(delivery_id=delivery.pk)
    assert WebhookDelivery.objects.filter(status="succeeded").exists()
    connection.set_tenant(live_tenant)

    logging.getLogger("storefront.test").debug("funnel ends")
    written = debug_log.getvalue()
    lines = written.splitlines()
    # The capture really saw the run, at DEBUG, through the configured handler and filter.
    assert "funnel starts" in written and "funnel ends" in written
    assert any(" DEBUG stripe " in line for line in lines), "stripe's DEBUG lines were captured"
    assert "[REDACTED" in written  # secrets did pass through the loggers, and were removed

    client_secrets = [s for s in ChargeAttempt.objects.values_list("client_secret", flat=True) if s]
    literal = {
        "gateway key": [settings.STRIPE_SECRET_KEY, "sk_test_local"],
        "webhook signing secret": [settings.STRIPE_WEBHOOK_SECRET],
        "partner API key": [issued.token],
        "partner webhook secret": [subscription.secret],
        "client secret": [s for s in client_secrets if "_secret_" in s],
        "card number": [gw.CARD_OK, gw.CARD_3DS],
    }
    assert literal["client secret"], "the funnel made payments with client secrets"
    leaks = []
    for number, line in enumerate(lines, 1):
        for card in _cards(line):
            leaks.append(f"line {number}: card-like number {card}: {line[:300]}")
        for what, shape in _SECRET_SHAPES.items():
            if shape.search(line):
                leaks.append(f"line {number}: {what}: {line[:300]}")
        for what, values in literal.items():
            for value in values:
                if value and value in line:
                    leaks.append(f"line {number}: {what} {value[:12]}…: {line[:300]}")
    assert leaks == [], "\n".join(leaks[:40])
