"""A mixed workload made the way production makes it: visitors browse the hosted pages, buy
through the checkout over localstripe, take or decline the upsell and downsell, abandon 3-D
Secure, take a follow-up cross-sell from its email link, and get refunds from the store
admin and the partner API. No event, line or ledger row is written by the test itself.

`Workload.expected` is what the buyers' side knows (who viewed, who paid what, which lines
were refunded and how much), written down as the script runs: the figures every metric must
reproduce."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.test import Client
from django.utils import timezone

from core import orderkeys
from offers.models import OfferKind
from partners.models import ApiKey
from partners.services import api_key_create
from storefront.models import FollowUpSend, Order, OrderLine
from storefront.services import followups
from tests import gateway_helpers as gw
from tests.factories import OfferFactory
from tests.upsell.helpers import buy, make_catalog, offer_token

HOST = "t1.localhost"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"


@dataclass
class Workload:
    catalog: dict
    orders: dict[str, Order] = field(default_factory=dict)
    visitors: set[str] = field(default_factory=set)  # visitor names that browsed
    page_views: int = 0  # (visitor, page) pairs seen
    # kind → {"sold", "full", "partial"} line counts, and refunded amounts per kind
    refunds: dict[str, dict[str, int]] = field(default_factory=dict)
    api_key: str = ""
    owner: Client | None = None


def visitor(name: str, n: int, source: str | None) -> Client:
    """A browser of its own (address, User-Agent, cookie jar) arriving on the product page."""
    return Client(HTTP_HOST=HOST, REMOTE_ADDR=f"203.0.113.{n}", HTTP_USER_AGENT=f"{BROWSER} {name}")


def _arrive(w: Workload, client: Client, name: str, source: str | None) -> None:
    query = f"?utm_source={source}" if source else ""
    assert client.get(f"/p/course/{query}").status_code == 200
    assert client.get("/p/course/").status_code == 200  # a reload in the window: not counted
    w.visitors.add(name)
    w.page_views += 1


def _declined_checkout(client: Client) -> Order:
    started = client.post(
        "/checkout/course/start",
        {"email": "declined@example.com", "country": "DE", "region": "", "save_card": "on"},
    ).json()
    order = Order.objects.get(token=started["order"])
    gw.confirm_card_setup(order.setup_ref, gw.CARD_DECLINE_AT_CHARGE)
    paid = client.post(started["pay_url"], {"setup_intent": order.setup_ref})
    assert paid.json()["status"] == "declined", paid.content
    return order


def _buy_3ds(client: Client, email: str) -> Order:
    """buy() with a card that asks for 3-D Secure on every payment: the buyer completes it on
    the card setup and on the checkout's payment (the intent found by its purpose)."""
    order = buy(client, email=email, card=gw.CARD_3DS, pay=False)
    paid = client.post(f"/o/{order.token}/pay", {"setup_intent": order.setup_ref}).json()
    assert paid["status"] == "requires_action", paid
    purpose = orderkeys.order_purpose(order.pk, orderkeys.PRIMARY)
    [intent] = [i for i in gw.payment_intents() if i.metadata.to_dict().get("purpose") == purpose]
    gw.authenticate(intent.id, paid["client_secret"])
    confirmed = client.post(f"/o/{order.token}/confirm").json()
    assert confirmed["status"] == "paid", confirmed
    order.refresh_from_db()
    return order


def _accept(client: Client, order: Order) -> None:
    client.post(f"/o/{order.token}/offer/accept", {"token": offer_token(client, order)})


def _decline(client: Client, order: Order) -> None:
    client.post(f"/o/{order.token}/offer/decline", {"token": offer_token(client, order)})


def _cross_sell(client: Client, order: Order) -> None:
    """The follow-up email goes out (as beat would send it) and the buyer clicks accept."""
    send = FollowUpSend.objects.filter(order=order).order_by("step").first()
    assert followups.followup_send(send_id=send.pk, now=timezone.now() + dt.timedelta(days=4))
    token = followups.accept_token(send=send, schema="t1")
    accepted = client.post(f"/f/{token}/accept")
    assert accepted.status_code in (200, 302, 303), accepted.status_code


def api_refund(w: Workload, line: OrderLine, amount: int, key: str) -> None:
    api = Client(HTTP_HOST=HOST, HTTP_AUTHORIZATION=f"Bearer {w.api_key}")
    done = api.post(
        f"/api/v1/orders/{line.order_id}/refunds/",
        {"line_id": line.pk, "amount": amount, "reason": "asked"},
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=key,
    )
    assert done.status_code == 201, done.content
    assert done.json()["status"] == "succeeded"


def admin_refund(w: Workload, line: OrderLine, amount: int) -> None:
    url = "/admin/storefront/order/"
    form = {"action": "refund_lines", "_selected_action": [line.order_id], "index": 0}
    page = w.owner.post(url, form)
    key = page.context["form"]["refund_key"].value()
    done = w.owner.post(
        url,
        {
            **form,
            "apply": "Refund",
            "refund_key": key,
            "reason": "asked",
            f"amount_{line.pk}": f"{amount / 100:.2f}",
        },
        follow=True,
    )
    assert done.status_code == 200


def _refunded(w: Workload, line: OrderLine, amount: int | None, *, via: str) -> None:
    amount = amount or line.total_amount  # None: in full
    (
        api_refund(w, line, amount, f"wl-{line.pk}")
        if via == "api"
        else admin_refund(w, line, amount)
    )
    figures = w.refunds.setdefault(line.kind, {"full": 0, "partial": 0, "amount": 0})
    figures["full" if amount == line.total_amount else "partial"] += 1
    figures["amount"] += amount


def run_workload(owner: Client) -> Workload:
    core, bump, upsell, downsell = make_catalog()
    cross = OfferFactory(
        kind=OfferKind.CROSS_SELL,
        trigger_product=core,
        price_amount=900,
        product__name="Lightroom presets",
        followup_delays_hours=[24],
    )
    w = Workload(
        catalog={
            "core": core,
            "bump": bump,
            "upsell": upsell,
            "downsell": downsell,
            "cross_sell": cross,
        }
    )
    w.api_key = api_key_create(name="workload", scope=ApiKey.Scope.WRITE).token
    w.owner = owner

    # Not visitors: a crawler and a browser's prefetch of the page.
    Client(HTTP_HOST=HOST, HTTP_USER_AGENT="Mozilla/5.0 (compatible; Googlebot/2.1)").get(
        "/p/course/"
    )
    Client(HTTP_HOST=HOST, HTTP_USER_AGENT=BROWSER, HTTP_SEC_PURPOSE="prefetch").get("/p/course/")

    # look (ig): the store page and the product page, buys nothing.
    look = visitor("look", 1, "ig")
    _arrive(w, look, "look", "ig")
    assert look.get("/").status_code == 200
    w.page_views += 1

    # a (ig): core + bump, takes the upsell; the upsell is refunded in full through the API.
    a = visitor("a", 2, "ig")
    _arrive(w, a, "a", "ig")
    w.orders["a"] = order = buy(a, email="a@example.com", bump=bump.pk)
    _accept(a, order)
    # b (ads): core, declines the upsell, takes the downsell; $3 of it refunded in the admin.
    b = visitor("b", 3, "ads")
    _arrive(w, b, "b", "ads")
    w.orders["b"] = buy(b, email="b@example.com")
    _decline(b, w.orders["b"])
    _accept(b, w.orders["b"])
    # c (direct): core + bump, declines both offers; the bump refunded in full in the admin.
    c = visitor("c", 4, None)
    _arrive(w, c, "c", None)
    w.orders["c"] = buy(c, email="c@example.com", bump=bump.pk)
    _decline(c, w.orders["c"])
    _decline(c, w.orders["c"])
    # d (direct): a 3-D Secure card; accepts the upsell and abandons its authentication.
    d = visitor("d", 5, None)
    _arrive(w, d, "d", None)
    w.orders["d"] = _buy_3ds(d, "d@example.com")
    _accept(d, w.orders["d"])
    assert d.post(f"/o/{w.orders['d'].token}/offer/abandon").status_code == 303
    # e (ads): ticks the bump, starts the checkout and leaves.
    e = visitor("e", 6, "ads")
    _arrive(w, e, "e", "ads")
    w.orders["e"] = buy(e, email="e@example.com", bump=bump.pk, pay=False)
    # f (ig): the card is declined at the charge.
    f = visitor("f", 7, "ig")
    _arrive(w, f, "f", "ig")
    w.orders["f"] = _declined_checkout(f)
    # g (ig): declines both offers, takes the follow-up cross-sell; $3 of it refunded (API).
    g = visitor("g", 8, "ig")
    _arrive(w, g, "g", "ig")
    w.orders["g"] = buy(g, email="g@example.com")
    _decline(g, w.orders["g"])
    _decline(g, w.orders["g"])
    _cross_sell(g, w.orders["g"])
    # h (direct): core only, declines both; the core refunded in full through the API.
    h = visitor("h", 9, None)
    _arrive(w, h, "h", None)
    w.orders["h"] = buy(h, email="h@example.com")
    _decline(h, w.orders["h"])
    _decline(h, w.orders["h"])

    line = OrderLine.objects.get
    _refunded(w, line(order=w.orders["a"], kind="upsell"), None, via="api")
    _refunded(w, line(order=w.orders["b"], kind="downsell"), 300, via="admin")
    _refunded(w, line(order=w.orders["c"], kind="bump"), None, via="admin")
    _refunded(w, line(order=w.orders["g"], kind="cross_sell"), 300, via="api")
    _refunded(w, line(order=w.orders["h"], kind="core"), None, via="api")
    for order in w.orders.values():
        order.refresh_from_db()
    return w


def assert_figures_equal_their_oracles(f) -> None:
    """Every read-model figure under filter `f` equals its direct-from-source oracle
    (analytics.selectors' `*_direct`), as the honest-numbers and demo tests check."""
    from analytics import selectors

    assert selectors.funnel(f) == selectors.funnel_direct(f), f
    assert selectors.traffic(f) == selectors.traffic_direct(f), f
    assert selectors.order_value(f) == selectors.order_value_direct(f), f
    for by in ("offer", "source"):
        assert selectors.take_rates(f, by=by) == selectors.take_rates_direct(f, by=by), f
    for by in ("offer", "kind"):
        assert selectors.refund_rates(f, by=by) == selectors.refund_rates_direct(f, by=by), f
    assert selectors.cohort_ltv(f) == selectors.cohort_ltv_direct(f), f
