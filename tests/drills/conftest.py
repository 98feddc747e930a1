"""Fault drills in the suite: the gateway stub on a thread, a private redis-server, and a
buyer's checkout through the hosted pages. bench/drills/ runs the same drills longer."""

from __future__ import annotations

import re

import pytest

from bench.stub_gateway import StubGateway
from payments.gateway import use_gateway
from payments.stripe_gateway import StripeGateway
from storefront.models import Order
from tests.catalog import catalog as shared_catalog

CORE, BUMP, UPSELL = 4900, 900, 1900


@pytest.fixture
def stub():
    """The Stripe-compatible stub (bench/stub_gateway.py) with a 1 s client timeout."""
    server = StubGateway(delay=0).start()
    use_gateway(StripeGateway(secret_key="sk_test_drill", api_base=server.base, timeout=1.0))
    yield server
    use_gateway(None)
    server.stop()


def catalog():
    """(core, bump, upsell, cross-sell) from the one test catalog (tests/catalog.py), at the
    drills' prices and with no VAT (the drill buyers are in the US)."""
    c = shared_catalog(
        upsell=True,
        upsell_price=UPSELL,
        bump_price=BUMP,
        cross_sell=True,
        cross_price=1500,
        followup_delays=[24, 72],
        german_vat=False,
    )
    return c.core, c.bump, c.upsell, c.cross


def start(client, bump, n: int):
    """checkout_start with the bump; returns (response, order or None)."""
    response = client.post(
        "/checkout/course/start",
        {
            "email": f"buyer{n}@example.com",
            "country": "US",
            "region": "",
            "save_card": "on",
            "bump": bump.pk,
            "add_bump": "on",
        },
    )
    if response.status_code != 200:
        return response, None
    return response, Order.objects.get(token=response.json()["order"])


def pay(client, order):
    return client.post(f"/o/{order.token}/pay", {"setup_intent": order.setup_ref})


def offer_token(client, order) -> tuple[int, str | None]:
    response = client.get(f"/o/{order.token}/offer")
    match = re.search(r'name="token" value="([^"]+)"', response.content.decode())
    return response.status_code, match.group(1) if match else None


def accept(client, order, token: str):
    return client.post(f"/o/{order.token}/offer/accept", {"token": token})
