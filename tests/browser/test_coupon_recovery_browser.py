"""Coupons and abandoned-checkout recovery in real headless Chromium: a ?coupon= link through
checkout, bump and upsell with the totals and tax the gateway charged; a reminder email (a
local SMTP server) leading back to a completed purchase."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.utils import timezone
from playwright.sync_api import expect

from storefront.models import FollowUpSend, Order, OrderStatus
from storefront.services import followups
from tests import gateway_helpers as gw
from tests.browser.conftest import fill_card
from tests.factories import CouponFactory
from tests.followups.conftest import smtp, smtp_mail  # noqa: F401 - fixtures
from tests.followups.smtp import text_of
from tests.upsell.helpers import make_catalog

pytestmark = [pytest.mark.browser, pytest.mark.gateway]


@pytest.fixture
def catalog(live_tenant):
    return make_catalog()


def _intents_by_purpose(order) -> dict[str, tuple[int, str]]:
    return {
        i.metadata.to_dict().get("purpose"): (i.amount, i.status)
        for i in gw.payment_intents()
        if i.metadata.to_dict().get("purpose", "").startswith(f"order:{order.pk}:")
    }


def test_a_coupon_link_carries_through_checkout_bump_and_upsell_with_tax_on_the_discount(
    page, live_url, catalog, stripe_api_base
):
    CouponFactory(code="SPRING20", percent_off="20.00")
    page.goto(f"{live_url}/p/course/?coupon=SPRING20")
    page.get_by_role("link", name="Buy now").click()
    expect(page.get_by_label("Coupon code (optional)")).to_have_value("SPRING20")
    page.get_by_label("Email").fill("coupon-buyer@example.com")
    page.get_by_label("Country").select_option("DE")
    # 4900 − 20% = 3920, VAT 19% on that: 7.45 (not 9.31 on the full price).
    expect(page.locator("#tax")).to_have_text("$7.45")
    expect(page.locator("#discount-label")).to_have_text("Discount (SPRING20, 20% off)")
    page.get_by_label("Yes, add Preset pack").check()
    # + the bump 900 − 20% = 720, VAT 1.37; the discount line 9.80 + 1.80.
    expect(page.locator("#discount")).to_have_text("−$11.60")
    expect(page.locator("#total")).to_have_text("$55.22")
    fill_card(page, gw.CARD_OK)
    page.get_by_role("button", name="Pay $55.22").click()

    page.wait_for_url("**/offer", timeout=15000)
    # The upsell is not discounted (a coupon is for the checkout), and fits the discounted cart.
    page.get_by_role("button", name="Yes, add it for $14.28").click()
    page.wait_for_url("**/thanks", timeout=15000)
    expect(page.locator("#order-lines tbody tr")).to_have_count(3)
    expect(page.locator("#discount-line")).to_contain_text("SPRING20")

    order = Order.objects.get(customer__email="coupon-buyer@example.com")
    assert order.coupon_code == "SPRING20" and order.status == OrderStatus.PAID
    assert _intents_by_purpose(order) == {
        f"order:{order.pk}:primary": (5522, "succeeded"),
        f"order:{order.pk}:upsell": (1428, "succeeded"),
    }
    assert sorted(order.lines.values_list("kind", "discount_amount", "tax_amount")) == [
        ("bump", 180, 137),
        ("core", 980, 745),
        ("upsell", 0, 228),
    ]


def test_a_reminder_email_leads_the_buyer_back_to_a_completed_purchase(
    page,
    live_url,
    live_tenant,
    catalog,
    stripe_api_base,
    smtp_mail,  # noqa: F811
):
    page.goto(f"{live_url}/checkout/course/")
    page.get_by_label("Email").fill("came-back@example.com")
    page.get_by_label("Country").select_option("DE")
    expect(page.locator("#tax")).to_have_text("$9.31")
    page.get_by_label("If I don't finish, send me up to two reminders").check()
    fill_card(page, gw.CARD_DECLINE_AT_CHARGE)
    page.get_by_role("button", name="Pay $58.31").click()
    expect(page.locator("#form-error")).to_contain_text("declined", timeout=15000)
    left = Order.objects.get(customer__email="came-back@example.com")
    assert left.status == OrderStatus.FAILED and left.reminder_consent

    connection.set_tenant(live_tenant)
    assert followups.followups_send_due(now=timezone.now() + dt.timedelta(hours=1, minutes=1)) == 1
    [mail] = smtp_mail.to("came-back@example.com")
    path = re.search(r"http://t1\.localhost(/r/\S+)", text_of(mail)).group(1)

    page.goto(f"{live_url}{path}")
    page.wait_for_url("**/checkout/course/**")
    expect(page.get_by_label("Email")).to_have_value("came-back@example.com")
    expect(page.get_by_label("If I don't finish, send me up to two reminders")).to_be_checked()
    expect(page.locator("#total")).to_have_text("$58.31")
    fill_card(page, gw.CARD_OK)
    page.get_by_role("button", name="Pay $58.31").click()
    page.wait_for_url(re.compile(r".*/(offer|thanks)$"), timeout=15000)

    back = Order.objects.exclude(pk=left.pk).get(customer__email="came-back@example.com")
    assert back.status == OrderStatus.PAID and back.recovered_from_id == left.pk
    assert back.utm_medium in ("recovery", "")  # first-click attribution may keep the first
    assert _intents_by_purpose(back) == {f"order:{back.pk}:primary": (5831, "succeeded")}
    # Three days on, the paid order's own follow-ups go out through the same job; the second
    # reminder is skipped: the buyer has bought.
    followups.followups_send_due(now=timezone.now() + dt.timedelta(days=3))
    second = FollowUpSend.objects.get(order=left, step=2)
    assert (second.status, second.skipped_reason) == ("skipped", "purchased")
    recovery_ids = {
        f"t1:{pk}"
        for pk in FollowUpSend.objects.filter(sequence="recovery").values_list("pk", flat=True)
    }
    reminders = [m for m in smtp_mail.messages if str(m["X-Followup-Id"]) in recovery_ids]
    assert [str(m["Subject"]) for m in reminders] == ["You left Photo course in your checkout"]
