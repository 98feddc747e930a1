"""The checkout in real headless Chromium against localstripe's fake Stripe.js."""

import pytest
from playwright.sync_api import expect

from payments.models import SavedPaymentMethod
from storefront.models import Order, OrderStatus
from tests import gateway_helpers as gw
from tests.browser.conftest import fill_card
from tests.catalog import catalog as shared_catalog

pytestmark = [pytest.mark.browser, pytest.mark.gateway]


@pytest.fixture
def catalog(live_tenant):
    c = shared_catalog()
    return c.core, c.bump


def _checkout(page, live_url, card: str, *, bump: bool = True):
    page.goto(f"{live_url}/p/course/?utm_source=newsletter")
    page.get_by_role("link", name="Buy now").click()
    page.get_by_label("Email").fill("browser-buyer@example.com")
    page.get_by_label("Country").select_option("DE")
    if bump:
        page.get_by_label("Yes, add Preset pack").check()
        # Totals are recomputed on the server: 4900+931 + 900+171
        expect(page.locator("#total")).to_contain_text("69.02")
    else:
        expect(page.locator("#total")).to_contain_text("58.31")
    fill_card(page, card)
    page.get_by_role("button", name="Pay").click()


def test_a_buyer_ticks_the_bump_and_pays_once_for_core_bump_and_tax(
    page, live_url, catalog, stripe_api_base
):
    _checkout(page, live_url, gw.CARD_OK)
    page.wait_for_url("**/thanks", timeout=15000)
    assert "Thank you" in page.content()

    order = Order.objects.get(customer__email="browser-buyer@example.com")
    assert order.status == OrderStatus.PAID
    assert order.utm_source == "newsletter"
    assert sorted(order.lines.values_list("kind", flat=True)) == ["bump", "core"]
    intents = gw.payment_intents()
    assert [(i.amount, i.status) for i in intents] == [(6902, "succeeded")]
    assert (
        SavedPaymentMethod.objects.filter(customer__email="browser-buyer@example.com").count() == 1
    )
    assert page.locator("#order-lines tbody tr").count() == 2


def test_a_declining_card_shows_an_error_and_leaves_no_paid_order(
    page, live_url, catalog, stripe_api_base
):
    _checkout(page, live_url, gw.CARD_DECLINE_AT_CHARGE, bump=False)
    error = page.locator("#form-error")
    error.filter(has_text="declined").wait_for(timeout=15000)
    assert not Order.objects.filter(status=OrderStatus.PAID).exists()
    assert all(i.status != "succeeded" for i in gw.payment_intents())


def test_a_card_from_another_country_is_confirmed_by_the_buyer_before_the_charge(
    page, live_url, catalog, stripe_api_base
):
    """The store collects EU VAT; the local gateway's cards are French and the buyer says
    Germany: the page asks, nothing is charged before the answer, then one charge."""
    from storefront.models import StoreSettings

    StoreSettings.current()
    StoreSettings.current()  # the row exists: a committing test may have emptied the table
    StoreSettings.objects.filter(pk=1).update(eu_vat_evidence=True, tax_country="IE")
    asked = []

    def answer(dialog):
        asked.append((dialog.message, len(gw.payment_intents())))
        dialog.accept()

    page.on("dialog", answer)
    _checkout(page, live_url, gw.CARD_OK, bump=False)
    page.wait_for_url("**/thanks", timeout=15000)
    [(message, charges_when_asked)] = asked
    assert "France" in message and "Germany" in message and charges_when_asked == 0
    order = Order.objects.get(customer__email="browser-buyer@example.com")
    assert order.status == OrderStatus.PAID
    assert order.tax_evidence["confirmed_by_buyer"] == "DE"
    assert [(i.amount, i.status) for i in gw.payment_intents()] == [(5831, "succeeded")]


def test_a_country_chosen_before_the_script_runs_is_quoted_when_it_does(
    page, live_url, catalog, stripe_api_base
):
    """A quick buyer on a slow line picks the country while checkout.js is still on its way:
    no change event reaches the script, and it still shows the total with that country's VAT
    as soon as it runs."""
    held = []
    page.route("**/checkout*.js", lambda route: held.append(route))
    page.goto(f"{live_url}/p/course/")
    page.get_by_role("link", name="Buy now").click()
    page.get_by_label("Country").select_option("DE")
    page.wait_for_timeout(200)  # the change event fires now, with no listener yet
    assert len(held) == 1, "checkout.js was not held back"
    expect(page.locator("#total")).to_contain_text("49.00")
    held[0].continue_()
    expect(page.locator("#total")).to_contain_text("58.31")
