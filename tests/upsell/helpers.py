"""Driving a checkout to the post-purchase page, as the browser would, for the upsell tests."""

import re

from payments.gateway import PaymentResult, PaymentStatus
from storefront.models import Order
from tests import gateway_helpers as gw
from tests.catalog import catalog

TOKEN_RE = re.compile(r'name="token" value="([^"]+)"')


def make_catalog(*, with_downsell: bool = True):
    """(core, bump, upsell, downsell or None) from the one test catalog (tests/catalog.py)."""
    c = catalog(upsell=True, downsell=with_downsell)
    return c.core, c.bump, c.upsell, c.downsell


def finish_setup(setup_ref: str) -> None:
    """The buyer completing 3-D Secure on the card-setup step (Stripe.js confirms again)."""
    gw._client().v1.setup_intents.confirm(setup_ref)


def buy(
    client,
    *,
    card: str = gw.CARD_OK,
    email: str = "buyer@example.com",
    bump: int | None = None,
    pay: bool = True,
) -> Order:
    data = {"email": email, "country": "DE", "region": "", "save_card": "on"}
    if bump:
        data.update(bump=bump, add_bump="on")
    started = client.post("/checkout/course/start", data)
    assert started.status_code == 200, started.content
    body = started.json()
    order = Order.objects.get(token=body["order"])
    if gw.confirm_card_setup(order.setup_ref, card) == "requires_action":
        finish_setup(order.setup_ref)
    if not pay:
        return order
    paid = client.post(body["pay_url"], {"setup_intent": order.setup_ref}).json()
    if paid["status"] == "requires_action":
        ref = gw.payment_intents()[0].id
        gw.authenticate(ref, paid["client_secret"])
        paid = client.post(body["confirm_url"]).json()
    assert paid["status"] == "paid", paid
    order.refresh_from_db()
    return order


def host_cached(client, host: str, path: str = "/checkout/course/") -> None:
    """The store's host in the routing cache, as on a warm process (bench/query_budgets.py
    measures so): the host lookup is routing's cost, budgeted by tests/tenancy with
    `SET search_path`, not the route's."""
    from tenants.routing import routing_cache

    assert routing_cache.wait_listening(), "the routing listener never connected"
    for _ in range(50):  # a late notification from an earlier change may empty it once
        client.get(path)
        if host in routing_cache._entries:
            return
    raise AssertionError(f"{host} never stayed in the routing cache")


def offer_token(client, order: Order) -> str:
    page = client.get(f"/o/{order.token}/offer")
    assert page.status_code == 200, page.status_code
    found = TOKEN_RE.search(page.content.decode())
    assert found, page.content.decode()
    return found.group(1)


class PendingPrimaryGateway:
    """The real (local) gateway, except that the primary charge comes back still processing,
    as a slow bank would leave it. Counts every charge sent."""

    def __init__(self, real):
        self.real = real
        self.sent: list[str] = []

    def __getattr__(self, name):
        return getattr(self.real, name)

    def charge(self, request):
        self.sent.append(request.metadata["purpose"])
        if request.metadata["purpose"].endswith(":primary"):
            return PaymentResult(
                PaymentStatus.PROCESSING, payment_ref="pi_slow_primary", amount=request.amount
            )
        return self.real.charge(request)
