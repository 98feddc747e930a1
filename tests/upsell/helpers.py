"""Driving a checkout to the post-purchase page, as the browser would, for the upsell tests."""

import re

from offers.models import OfferKind
from payments.gateway import PaymentResult, PaymentStatus
from storefront.models import Order
from tests import gateway_helpers as gw
from tests.factories import OfferFactory, ProductFactory, TaxRateFactory

TOKEN_RE = re.compile(r'name="token" value="([^"]+)"')


def make_catalog(*, with_downsell: bool = True):
    core = ProductFactory(slug="course", name="Photo course", price_amount=4900)
    bump = OfferFactory(trigger_product=core, price_amount=900, product__name="Preset pack")
    upsell = OfferFactory(
        kind=OfferKind.UPSELL,
        trigger_product=core,
        price_amount=1200,
        product__name="Editing masterclass",
        product__price_amount=2900,
        headline="Add the editing masterclass",
        benefit="Finish every photo in five minutes.",
        refund_terms="Refundable within 30 days, no questions asked.",
    )
    downsell = None
    if with_downsell:
        downsell = OfferFactory(
            kind=OfferKind.DOWNSELL,
            trigger_product=core,
            parent=upsell,
            price_amount=700,
            product__name="Editing cheat sheet",
            headline="Just the cheat sheet",
        )
    TaxRateFactory(country="DE", rate="19.000")
    return core, bump, upsell, downsell


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
