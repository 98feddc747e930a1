"""Buy → one-click upsell → thank-you page, and the 3-D Secure step, in real headless Chromium."""

import pytest
from playwright.sync_api import expect

from payments.models import ChargeAttempt
from storefront.models import Order
from tests import gateway_helpers as gw
from tests.browser.conftest import fill_card
from tests.upsell.helpers import make_catalog

pytestmark = [pytest.mark.browser, pytest.mark.gateway]


@pytest.fixture
def catalog(live_tenant):
    return make_catalog()


def _buy(page, live_url, card: str):
    page.goto(f"{live_url}/checkout/course/")
    page.get_by_label("Email").fill("browser-buyer@example.com")
    page.get_by_label("Country").select_option("DE")
    # Let the country's quote land before the bump's (checkout.js applies answers as they come).
    expect(page.locator("#tax")).to_contain_text("9.31")
    page.get_by_label("Yes, add Preset pack").check()
    expect(page.locator("#total")).to_contain_text("69.02")
    fill_card(page, card)
    page.get_by_role("button", name="Pay").click()


def _upsell_intents(order):
    return [
        i
        for i in gw.payment_intents()
        if i.metadata.to_dict().get("purpose") == f"order:{order.pk}:upsell"
    ]


def test_a_buyer_accepts_the_upsell_with_one_click_and_the_thanks_page_lists_three_lines(
    page, live_url, catalog, stripe_api_base
):
    _buy(page, live_url, gw.CARD_OK)
    page.wait_for_url("**/offer", timeout=15000)
    expect(page.locator("#offer-tax")).to_have_text("$2.28")  # tax shown before the click
    expect(page.get_by_text("Refundable within 30 days, no questions asked.")).to_be_visible()
    page.get_by_role("button", name="Yes, add it for $14.28").click()

    page.wait_for_url("**/thanks", timeout=15000)
    rows = page.locator("#order-lines tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator('#order-lines tr[data-kind="upsell"]')).to_contain_text(
        "Editing masterclass"
    )
    order = Order.objects.get(customer__email="browser-buyer@example.com")
    assert [(i.amount, i.status) for i in _upsell_intents(order)] == [(1428, "succeeded")]
    assert len(gw.payment_intents()) == 2


def test_a_3ds_upsell_is_confirmed_on_session_in_the_browser(
    page, live_url, catalog, stripe_api_base
):
    _buy(page, live_url, gw.CARD_3DS)
    # The card setup and the primary payment each ask for authentication.
    for _ in range(2):
        page.get_by_role("button", name="Complete authentication").click(timeout=15000)
    page.wait_for_url("**/offer", timeout=15000)
    page.get_by_role("button", name="Yes, add it for $14.28").click()

    expect(page.get_by_role("heading", name="Your bank asks you to confirm")).to_be_visible(
        timeout=15000
    )
    order = Order.objects.get(customer__email="browser-buyer@example.com")
    assert ChargeAttempt.objects.get(purpose=f"order:{order.pk}:upsell").status == "requires_action"
    assert not order.lines.filter(kind="upsell").exists()  # no silent charge

    page.get_by_role("button", name="Confirm payment").click()
    page.get_by_role("button", name="Complete authentication").click(timeout=15000)
    page.wait_for_url("**/thanks", timeout=15000)
    expect(page.locator("#order-lines tbody tr")).to_have_count(3)
    assert [i.status for i in _upsell_intents(order)] == ["succeeded"]
