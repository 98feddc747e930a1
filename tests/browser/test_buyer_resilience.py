"""The buyer's pages without our JavaScript, with Stripe.js blocked, on a phone, clicked twice."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import expect

from payments.models import ChargeAttempt
from storefront.models import Order
from tests import gateway_helpers as gw
from tests.browser.tour import CORE, HOST, buy, demo_catalog

pytestmark = [pytest.mark.browser, pytest.mark.gateway]

PHONE = {"width": 375, "height": 667}


@pytest.fixture
def catalog(live_tenant, stripe_api_base):
    return demo_catalog()


@pytest.fixture
def no_js(browser):
    context = browser.new_context(java_script_enabled=False, viewport=PHONE)
    yield context
    context.close()


def _post_purchase_intents(order: Order, kind: str) -> list:
    purpose = f"order:{order.pk}:{kind}"
    return [i for i in gw.payment_intents() if i.metadata.to_dict().get("purpose") == purpose]


def test_without_javascript_the_bump_is_added_by_a_form_post_that_recomputes_the_total(
    no_js, live_url, catalog
):
    page = no_js.new_page()
    page.goto(f"{live_url}/checkout/{CORE}/")
    expect(page.locator("#total")).to_have_text("$49.00")
    page.get_by_label("Country").select_option("DE")
    page.get_by_label("Yes, add Lightroom preset pack").check()
    page.get_by_role("button", name="Update total").click()
    page.wait_for_load_state("load")
    # Recomputed on the server: 4900 + 19% VAT, plus the 900 bump + 19% VAT.
    expect(page.locator("#total")).to_have_text("$69.02")
    expect(page.locator("#summary-lines tr")).to_have_count(2)
    expect(page.get_by_label("Yes, add Lightroom preset pack")).to_be_checked()
    expect(page.get_by_label("Country")).to_have_value("DE")
    # Only the card needs JavaScript, and the page says so instead of offering a dead button.
    expect(page.get_by_text("Paying by card needs JavaScript")).to_be_visible()
    expect(page.locator("#pay-button")).to_be_disabled()


def test_without_javascript_a_bad_region_is_reported_at_its_field(no_js, live_url, catalog):
    page = no_js.new_page()
    page.goto(f"{live_url}/checkout/{CORE}/")
    page.get_by_label("State or region (optional)").fill("not a region!")
    page.get_by_role("button", name="Update total").click()
    region = page.get_by_label("State or region (optional)")
    expect(region).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#region-error")).to_contain_text("valid state or region")
    expect(page.get_by_role("alert").first).to_contain_text("Error:")


def test_without_javascript_the_upsell_is_accepted_with_one_plain_form_post_and_charged_once(
    no_js, live_url, catalog
):
    order = buy(Client(HTTP_HOST=HOST), email="nojs-taker@example.com")
    page = no_js.new_page()
    page.goto(f"{live_url}/o/{order.token}/offer")
    page.get_by_role("button", name="Yes, add it for $22.61").click()
    page.wait_for_url("**/thanks")
    expect(page.locator('#order-lines tr[data-kind="upsell"]')).to_contain_text(
        "Editing masterclass"
    )
    expect(page.locator("#order-lines tbody tr")).to_have_count(2)
    assert [(i.amount, i.status) for i in _post_purchase_intents(order, "upsell")] == [
        (2261, "succeeded")
    ]


def test_without_javascript_declining_twice_leads_to_thanks_with_nothing_charged(
    no_js, live_url, catalog
):
    order = buy(Client(HTTP_HOST=HOST), email="nojs-decliner@example.com")
    page = no_js.new_page()
    page.goto(f"{live_url}/o/{order.token}/offer")
    page.get_by_role("button", name="No thanks").click()
    expect(page.locator("#offer")).to_have_attribute("data-kind", "downsell")
    expect(page.get_by_role("heading", name="Or just a portfolio review")).to_be_visible()
    page.get_by_role("button", name="No thanks").click()
    page.wait_for_url("**/thanks")
    expect(page.locator("#order-lines tbody tr")).to_have_count(1)
    assert _post_purchase_intents(order, "upsell") == []
    assert _post_purchase_intents(order, "downsell") == []


def test_an_accept_sent_again_from_a_second_tab_charges_nothing_more(no_js, live_url, catalog):
    order = buy(Client(HTTP_HOST=HOST), email="two-tabs@example.com")
    first, second = no_js.new_page(), no_js.new_page()
    first.goto(f"{live_url}/o/{order.token}/offer")
    second.goto(f"{live_url}/o/{order.token}/offer")
    first.get_by_role("button", name="Yes, add it").click()
    first.wait_for_url("**/thanks")
    second.get_by_role("button", name="Yes, add it").click()
    expect(second.locator("#refusal")).to_be_visible()
    assert len(_post_purchase_intents(order, "upsell")) == 1
    assert ChargeAttempt.objects.filter(purpose=f"order:{order.pk}:upsell").count() == 1


def test_a_double_click_on_accept_sends_one_post_and_charges_once(page, live_url, catalog):
    order = buy(Client(HTTP_HOST=HOST), email="double-click@example.com")
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.goto(f"{live_url}/o/{order.token}/offer")
    page.get_by_role("button", name="Yes, add it").dblclick()
    page.wait_for_url("**/thanks")
    assert [u for u in posts if u.endswith("/offer/accept")] == [
        f"{live_url}/o/{order.token}/offer/accept"
    ]
    assert len(_post_purchase_intents(order, "upsell")) == 1


def test_a_blocked_stripe_js_shows_a_clear_message_instead_of_a_dead_pay_button(
    page, live_url, catalog
):
    blocked = []
    page.route(
        settings.STRIPE_JS_URL, lambda route: (blocked.append(route.request.url), route.abort())
    )
    page.goto(f"{live_url}/checkout/{CORE}/")
    status = page.get_by_role("status").filter(has_text="card form could not load")
    expect(status).to_be_visible(timeout=10000)
    expect(status).to_contain_text("nothing has been charged")
    expect(page.locator("#pay-button")).to_be_disabled()
    expect(page.locator("#pay-button")).to_have_text("Card form unavailable")
    assert blocked == [settings.STRIPE_JS_URL]  # the route really caught Stripe.js
    # The rest of the page still works: the bump still recomputes the total.
    page.get_by_label("Country").select_option("DE")
    expect(page.locator("#tax")).to_contain_text("9.31")
    page.get_by_label("Yes, add Lightroom preset pack").check()
    expect(page.locator("#total")).to_contain_text("69.02")


def test_the_upsell_fits_one_375_by_667_screen_with_price_tax_accept_and_decline(
    browser, live_url, catalog
):
    order = buy(Client(HTTP_HOST=HOST), email="phone@example.com")
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(f"{live_url}/o/{order.token}/offer")
    for selector in (
        "#offer-headline",
        "#offer-tax",
        "#offer-total",
        "#offer-terms",
        "#accept-button",
        "#decline-button",
    ):
        box = page.locator(selector).bounding_box()
        assert box is not None, selector
        assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], (selector, box)
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (selector, box)
    expect(page.locator("#offer-tax")).to_have_text("$3.61")
    expect(page.locator("#offer-total")).to_have_text("$22.61")
    assert page.locator("#offer button[type=submit]").count() == 2  # one accept, one decline
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    context.close()
