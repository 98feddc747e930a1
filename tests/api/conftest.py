"""Partner API fixtures: store API keys, API clients per host, a paid order over localstripe,
and a local HTTP receiver for outbound webhooks that verifies their signature."""

from __future__ import annotations

import http.server
import threading

import pytest
from django.db import connection
from django.test import Client

from partners import services
from partners.models import ApiKey, IdempotencyRecord, WebhookDelivery, WebhookSubscription
from partners.services import api_key_create
from tests import gateway_helpers as gw
from tests.factories import ProductFactory, TaxRateFactory


@pytest.fixture
def api_for():
    """A client that sends `token` as a Bearer key to `host`."""

    def make(host: str, token: str | None) -> Client:
        extra = {"HTTP_HOST": host}
        if token:
            extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return Client(**extra)

    return make


@pytest.fixture
def write_key(tenant) -> str:
    return api_key_create(name="partner", scope=ApiKey.Scope.WRITE).token


@pytest.fixture
def read_key(tenant) -> str:
    return api_key_create(name="reader", scope=ApiKey.Scope.READ).token


@pytest.fixture
def live_partners(live_tenant):
    """live_tenant does not know the partners tables: empty them after a committing test."""
    yield live_tenant
    connection.set_tenant(live_tenant)
    for model in (WebhookDelivery, WebhookSubscription, IdempotencyRecord, ApiKey):
        model.objects.all().delete()


def paid_order(host: str = "t1.localhost", *, price: int = 4900, email: str = "buyer@example.com"):
    """Buy a product through the hosted checkout (localstripe): a paid order with one line."""
    from storefront.models import Order

    slug = f"course-{price}-{email.split('@')[0]}"
    ProductFactory(slug=slug, name="Photo course", price_amount=price)
    if not TaxRateFactory._meta.model.objects.filter(country="DE", region="").exists():
        TaxRateFactory(country="DE", rate="19.000")
    client = Client(HTTP_HOST=host)
    started = client.post(
        f"/checkout/{slug}/start",
        {"email": email, "country": "DE", "region": "", "save_card": "on"},
    )
    assert started.status_code == 200, started.content
    body = started.json()
    order = Order.objects.get(token=body["order"])
    assert gw.confirm_card_setup(order.setup_ref) == "succeeded"
    paid = client.post(body["pay_url"], {"setup_intent": order.setup_ref})
    assert paid.json()["status"] == "paid", paid.content
    order.refresh_from_db()
    return order


class _Receiver(http.server.BaseHTTPRequestHandler):
    status = 200
    secret = ""
    received: list = []
    location = ""

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        ok = services.webhook_verify(
            secret=self.secret,
            timestamp=self.headers.get(services.TIMESTAMP_HEADER, ""),
            body=body,
            signature=self.headers.get(services.SIGNATURE_HEADER, ""),
        )
        type(self).received.append((ok, body, dict(self.headers)))
        self.send_response(self.status if ok else 401)
        if self.location:
            self.send_header("Location", self.location)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    def start(status: int, secret: str, location: str = ""):
        handler = type(
            "Handler",
            (_Receiver,),
            {"status": status, "secret": secret, "received": [], "location": location},
        )
        server = http.server.HTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/hook", handler

    servers: list = []
    yield start
    for server in servers:
        server.shutdown()
