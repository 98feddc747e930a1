"""Every hosted page a buyer can see, built from the demo ladder, for the page-quality tests.

`demo_catalog()` seeds the products `bin/run` seeds (seed_demo's DEMO_LADDER) plus a bump,
an upsell and a downsell on the entry product. `tour_pages()` buys through localstripe as the
browser would and returns the URL of each page in the state a buyer meets it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.test import Client, RequestFactory
from django.views import defaults

from offers.models import OfferKind
from storefront.management.commands.seed_demo import DEMO_LADDER
from storefront.models import FollowUpSend, Order, Product
from storefront.services import followups
from tenants.models import Creator
from tests import gateway_helpers as gw
from tests.factories import OfferFactory, TaxRateFactory
from tests.upsell.helpers import TOKEN_RE, finish_setup

HOST = "t1.localhost"
CORE = "photo-basics"


@dataclass(frozen=True)
class Catalog:
    core: Product
    bump_id: int
    upsell_id: int
    downsell_id: int


def demo_catalog() -> Catalog:
    products = {}
    for slug, name, tier, pos, price, anchor, desc in DEMO_LADDER:
        products[slug] = Product.objects.create(
            slug=slug,
            name=name,
            tier=tier,
            ladder_position=pos,
            price_amount=price,
            anchor_amount=anchor,
            currency="USD",
            description=desc,
            status=Product.Status.ACTIVE,
            deliverable_url=f"https://files.example/{slug}.zip",
        )
    core = products[CORE]
    bump = OfferFactory(
        kind=OfferKind.BUMP,
        trigger_product=core,
        product=products["preset-pack"],
        price_amount=900,
        headline="Add the preset pack",
        benefit="Forty presets tuned to the lessons: one click, the look you just learned.",
        refund_terms="Refundable within 30 days.",
    )
    upsell = OfferFactory(
        kind=OfferKind.UPSELL,
        trigger_product=core,
        product=products["editing-masterclass"],
        price_amount=1900,
        headline="Add the editing masterclass",
        benefit="Three hours of live edits, start to finish, with the raw files to follow along.",
        refund_terms="Refundable within 30 days, no questions asked.",
        testimonial="“I finally finish my edits in minutes.” Ana, a student",
    )
    downsell = OfferFactory(
        kind=OfferKind.DOWNSELL,
        trigger_product=core,
        parent=upsell,
        product=products["portfolio-review"],
        price_amount=900,
        headline="Or just a portfolio review",
        benefit="A recorded, personal critique of ten of your photos.",
        refund_terms="Refundable until the review is recorded.",
    )
    TaxRateFactory(country="DE", rate="19.000")
    return Catalog(core=core, bump_id=bump.pk, upsell_id=upsell.pk, downsell_id=downsell.pk)


def buy(client: Client, *, email: str, bump_id: int | None = None) -> Order:
    """Checkout and pay as checkout.js does (card saved with localstripe, then one payment)."""
    data = {"email": email, "country": "DE", "region": "", "save_card": "on"}
    if bump_id:
        data.update(bump=bump_id, add_bump="on")
    started = client.post(f"/checkout/{CORE}/start", data)
    assert started.status_code == 200, started.content
    body = started.json()
    order = Order.objects.get(token=body["order"])
    if gw.confirm_card_setup(order.setup_ref, gw.CARD_OK) == "requires_action":
        finish_setup(order.setup_ref)
    paid = client.post(body["pay_url"], {"setup_intent": order.setup_ref}).json()
    assert paid["status"] == "paid", paid
    order.refresh_from_db()
    return order


def offer_token(client: Client, order: Order) -> str:
    page = client.get(f"/o/{order.token}/offer")
    assert page.status_code == 200, page.status_code
    return TOKEN_RE.search(page.content.decode()).group(1)


@dataclass(frozen=True)
class Tour:
    pages: dict[str, str]  # name -> path on the store's host
    rendered: dict[str, tuple[int, str]]  # name -> (status, HTML) for pages no URL reaches
    upsell_order: Order
    downsell_order: Order


def tour_pages(catalog: Catalog) -> Tour:
    """Each listed page, reached the way a buyer reaches it (two orders: upsell, downsell)."""
    client = Client(HTTP_HOST=HOST)
    first = buy(client, email="tour-buyer@example.com", bump_id=catalog.bump_id)
    offer_token(client, first)  # presents the upsell
    second = buy(client, email="tour-decliner@example.com")
    declined = client.post(
        f"/o/{second.token}/offer/decline", {"token": offer_token(client, second)}
    )
    assert declined.status_code == 303
    send = FollowUpSend.objects.filter(order=first).order_by("step").first()
    assert send is not None, "paying the order schedules its follow-up emails"
    pages = {
        "store-index": "/",
        "product": f"/p/{CORE}/",
        "checkout": f"/checkout/{CORE}/",
        "upsell": f"/o/{first.token}/offer",
        "downsell": f"/o/{second.token}/offer",
        "thank-you": f"/o/{first.token}/thanks",
        "follow-up-offer": "/f/" + followups.accept_token(send=send, schema="t1"),
        "unsubscribe": "/u/"
        + followups.unsubscribe_token(customer_id=second.customer_id, schema="t1"),
        "offer-refused": f"/o/{first.token}/offer/accept",  # a GET never charges: explained
        "error-404": "/p/no-such-product/",
        "error-403-download": "/d/not-a-valid-link",
        # More query fields than Django accepts: SuspiciousOperation, the 400 page.
        "error-400": f"/checkout/{CORE}/?" + "&".join(f"f{i}=1" for i in range(1100)),
    }
    request = RequestFactory(HTTP_HOST=HOST).get("/")
    request.tenant = Creator.objects.get(slug="t1")
    rendered = {
        # No URL of the store fails on purpose: render Django's own handlers with our templates.
        "error-500": (500, defaults.server_error(request).content.decode()),
        "error-403": (403, defaults.permission_denied(request, PermissionError()).content.decode()),
        "error-403-csrf": _csrf_failure(),
    }
    return Tour(pages=pages, rendered=rendered, upsell_order=first, downsell_order=second)


def _csrf_failure() -> tuple[int, str]:
    """A stale form posted without its cookie: Django's CSRF page, with our template."""
    strict = Client(HTTP_HOST=HOST, enforce_csrf_checks=True)
    response = strict.post(f"/checkout/{CORE}/", {"email": "x@example.com"})
    assert response.status_code == 403
    return 403, response.content.decode()
