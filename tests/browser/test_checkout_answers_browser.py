"""The checkout script with answers it did not expect: a readable message, never a parser's."""

import pytest
from playwright.sync_api import expect

from storefront.models import Order
from tests import gateway_helpers as gw
from tests.browser.conftest import fill_card
from tests.factories import ProductFactory, TaxRateFactory

pytestmark = [pytest.mark.browser, pytest.mark.gateway]


@pytest.fixture
def course(live_tenant):
    TaxRateFactory(country="DE", rate="19.000")
    return ProductFactory(slug="course", name="Photo course", price_amount=4900)


@pytest.mark.parametrize(
    "status, body, content_type",
    [
        (502, "<html><body>Bad gateway</body></html>", "text/html"),
        (500, "", "text/plain"),
        (400, "{not json", "application/json"),
    ],
)
def test_a_non_json_answer_to_checkout_start_shows_a_readable_message(
    page, live_url, course, stripe_api_base, status, body, content_type
):
    page.route(
        "**/checkout/course/start",
        lambda route: route.fulfill(status=status, body=body, content_type=content_type),
    )
    page.goto(f"{live_url}/checkout/course/")
    page.get_by_label("Email").fill("browser-buyer@example.com")
    page.get_by_label("Country").select_option("DE")
    expect(page.locator("#total")).to_contain_text("58.31")
    fill_card(page, gw.CARD_OK)
    page.get_by_role("button", name="Pay").click()
    error = page.locator("#form-error")
    expect(error).to_contain_text("nothing has been charged", timeout=15000)
    assert "Unexpected token" not in error.inner_text()
    assert "JSON" not in error.inner_text()
    assert not Order.objects.exists()
    expect(page.get_by_role("button", name="Pay")).to_be_enabled()


def test_a_refused_checkout_field_shows_the_servers_reason(page, live_url, course, stripe_api_base):
    page.goto(f"{live_url}/checkout/course/")
    # A NUL typed (or pasted) into the form: refused by the input boundary with its reason.
    page.get_by_label("Email").fill("browser-buyer@example.com")
    page.evaluate("document.getElementById('id_region').value = 'C\\u0000A'")
    fill_card(page, gw.CARD_OK)
    page.get_by_role("button", name="Pay").click()
    expect(page.locator("#form-error")).to_contain_text("NUL", timeout=15000)
    assert not Order.objects.exists()
