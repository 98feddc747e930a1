"""A free trial without a setup fee bought in Chromium: the page says nothing is charged today
and names the first charge, the buyer enters a card and starts the trial; the card is saved,
no payment exists, and the subscription trials on that card."""

import pytest
from playwright.sync_api import expect

from payments.models import ChargeAttempt, SavedPaymentMethod
from storefront.models import Order, OrderStatus
from subscriptions.models import Plan, Subscription, SubscriptionStatus
from tests import gateway_helpers as gw
from tests.browser_support import fill_card
from tests.catalog import catalog as shared_catalog

pytestmark = [pytest.mark.browser, pytest.mark.gateway]


def test_a_buyer_starts_a_free_trial_with_a_card_and_nothing_is_charged(
    page, live_url, live_tenant, stripe_api_base
):
    core = shared_catalog().core
    Plan.objects.create(
        product=core, kind="subscription", interval_unit="month", interval_count=1, trial_days=14
    )
    page.goto(f"{live_url}/checkout/course/")
    page.get_by_label("Email").fill("trial-buyer@example.com")
    page.get_by_label("Country").select_option("DE")
    expect(page.locator("#total")).to_contain_text("0.00")
    expect(page.locator("#charge-terms")).to_contain_text("nothing today")
    expect(page.locator("#charge-terms")).to_contain_text("free for 14 days, then $58.31")
    fill_card(page, gw.CARD_OK)
    page.get_by_role("button", name="Start free trial").click()
    page.wait_for_url("**/thanks", timeout=15000)

    order = Order.objects.get(customer__email="trial-buyer@example.com")
    assert order.status == OrderStatus.PAID
    assert gw.payment_intents() == [] and not ChargeAttempt.objects.exists()
    sub = Subscription.objects.get(order=order)
    method = SavedPaymentMethod.objects.get(customer__email="trial-buyer@example.com")
    assert sub.status == SubscriptionStatus.TRIALING
    assert sub.payment_method_ref == method.gateway_ref
    assert not [m for m in page.console_messages if m.startswith("pageerror")]
