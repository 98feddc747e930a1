"""The store admin on the seeded demo (storefront.demo_history), in real headless Chromium at
1280 px and 375 px: the home, the insights page, an offer's page with its money input, and a
seeded order refunded from the admin (recorded without a gateway call: payments.demo), each
with axe-core at 0 violations. With SCREENSHOTS=1 the pages are saved to
artifacts/screenshots/admin-demo-*.png."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from analytics import selectors
from analytics.selectors import MetricFilter
from core.money import Money
from core.money_forms import major_text
from offers.models import Offer, OfferKind
from payments.models import Refund
from storefront.models import Order, Product
from tests.analytics.test_demo_history import demo_catalog_connected
from tests.browser.test_store_admin_browser import OWNER, PASSWORD, audit_at_both_widths

pytestmark = [pytest.mark.browser, pytest.mark.gateway, pytest.mark.slow]

DAYS = 6  # the story, short: the experiment on days 1–3, the pause on day 4


@pytest.fixture
def seeded_demo(live_tenant):
    from analytics import pageviews
    from storefront.demo_history import demo_history_seed

    pageviews.local_state_clear()
    try:
        demo_catalog_connected(account="acct_demobrowser")
        yield demo_history_seed(days=DAYS, progress=lambda line: None)
    finally:
        pageviews.local_state_clear()


def _refund_a_seeded_order(owner: Client) -> Order:
    refunded = {
        int(ref.split(":")[1]) for ref in Refund.objects.values_list("reference", flat=True)
    }
    order = (
        Order.objects.filter(status="paid", lines__kind="bump")
        .exclude(pk__in=refunded)
        .order_by("pk")
        .first()
    )
    assert order is not None, "the seeded demo has no paid order with a bump"
    picked = {"action": "refund_lines", "_selected_action": [order.pk], "index": 0}
    form = owner.post("/admin/storefront/order/", picked).context["form"]
    bump = order.lines.get(kind="bump")
    done = owner.post(
        "/admin/storefront/order/",
        {
            **picked,
            "apply": "Refund",
            "refund_key": form["refund_key"].value(),
            "reason": "The buyer asked",
            f"amount_{bump.pk}": major_text(bump.total_amount, bump.currency),
        },
        follow=True,
    )
    told = [str(m) for m in done.context["messages"]]
    assert any("demo data: no gateway call" in m for m in told), told
    assert Refund.objects.get(reference=order.reference).status == "succeeded"
    return order


def test_the_seeded_demo_reads_at_a_glance_and_passes_axe_at_desktop_and_phone_widths(
    browser, live_url, seeded_demo, stripe_api_base
):
    assert seeded_demo.orders >= 5
    owner = Client(HTTP_HOST="t1.localhost")
    assert owner.login(username=OWNER, password=PASSWORD)
    order = _refund_a_seeded_order(owner)
    upsell = Offer.objects.filter(kind=OfferKind.UPSELL).order_by("pk").first()
    product = Product.objects.get(slug="photo-basics")
    shown = {
        "demo-home": "/admin/",
        "demo-dashboard": "/admin/analytics/dashboard/",
        "demo-offer": f"/admin/offers/offer/{upsell.pk}/change/",
        "demo-order-refunded": f"/admin/storefront/order/{order.pk}/change/",
    }
    audited_only = {
        "demo-product": f"/admin/storefront/product/{product.pk}/change/",
        "demo-settings": "/admin/storefront/storesettings/1/change/",
        "demo-orders": "/admin/storefront/order/",
    }
    [value] = selectors.order_value_direct(MetricFilter())

    def checks(context) -> None:
        page = context.new_page()
        page.goto(live_url + shown["demo-dashboard"])
        # The all-time net revenue, after the refund, as its oracle has it.
        assert Money(value["net"], value["currency"]).format() in page.inner_text("#content")
        assert "minor units" not in page.content()
        page.goto(live_url + shown["demo-order-refunded"])
        text = page.inner_text("#content")
        assert "Demo data" in text and "The buyer asked" in text
        page.goto(live_url + shown["demo-offer"])
        price = page.locator("input[name=price_amount]")
        assert price.input_value() == major_text(upsell.price_amount, upsell.currency)
        assert "USD" in page.inner_text(".money-input")
        page.close()

    violations = audit_at_both_widths(browser, live_url, shown, audited_only, checks)
    assert violations == {}, json.dumps(violations, indent=1)
