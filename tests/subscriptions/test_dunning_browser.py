"""The dunning path end to end: a renewal fails, the buyer gets the email through the local
SMTP server, updates the card on the SetupIntent page in Chromium, and the immediate retry
succeeds; and the path that ends cancelled, seen on the buyer's page."""

import datetime as dt
import re

import pytest
from playwright.sync_api import expect

from subscriptions import notices, services
from subscriptions.models import Notice, PeriodStatus, Subscription, SubscriptionStatus
from tests import gateway_helpers as gw
from tests.browser_support import fill_card
from tests.subscriptions.helpers import at, gateway_charges, ledger_charges, plan, start

pytestmark = [pytest.mark.browser, pytest.mark.gateway]
CARD_DECLINE = "4000000000000341"


def _send_notices() -> None:
    for pk in (
        Notice.objects.filter(sent_at__isnull=True).order_by("pk").values_list("pk", flat=True)
    ):
        notices.notice_send(notice_id=pk)


def _link(message, live_url: str, pattern: str) -> str:
    found = re.search(pattern, message.get_content())
    assert found, message.get_content()
    return live_url + "/" + found.group(0).split("/", 3)[3]


def test_a_failed_renewal_is_recovered_by_a_card_updated_in_the_browser(
    page, live_url, smtp_mail, stripe_api_base
):
    sub = start(
        plan(price=1900, name="Monthly community"), started_at=at(2027, 1, 31), card=CARD_DECLINE
    )
    services.renewals_run(now=at(2027, 2, 28, 13))
    sub.refresh_from_db()
    assert sub.status == SubscriptionStatus.PAST_DUE
    _send_notices()
    (failed,) = smtp_mail.messages
    assert failed["Subject"] == "Your payment did not go through: update your card"
    card_url = _link(failed, live_url, r"https?://\S+/account/subscriptions/\S+/\d+/card/")

    page.goto(card_url)
    expect(page.get_by_role("heading", name="Update your card")).to_be_visible()
    fill_card(page, gw.CARD_OK)
    page.get_by_role("button", name="Save card").click()
    expect(page.locator("#card-status")).to_contain_text("Your payment went through", timeout=15000)

    sub.refresh_from_db()
    assert sub.status == SubscriptionStatus.ACTIVE
    assert sub.periods.get(number=1).status == PeriodStatus.PAID
    assert sub.periods.get(number=1).tries == 2
    assert len(gateway_charges(sub)) == 1 and ledger_charges(sub) == gateway_charges(sub)
    _send_notices()
    subjects = [m["Subject"] for m in smtp_mail.messages]
    assert "Your card was updated" in subjects and "Receipt for your subscription" in subjects
    assert not [m for m in page.console_messages if m.startswith("pageerror")]


def test_the_path_that_ends_cancelled_is_told_by_email_and_shown_on_the_buyers_page(
    page, live_url, smtp_mail, stripe_api_base
):
    sub = start(
        plan(price=1900, name="Monthly community"), started_at=at(2027, 1, 31), card=CARD_DECLINE
    )
    services.renewals_run(now=at(2027, 2, 28, 13))
    for days in (1, 3, 5, 7):
        services.renewals_run(now=at(2027, 2, 28, 12) + dt.timedelta(days=days))
    sub.refresh_from_db()
    assert sub.status == SubscriptionStatus.CANCELED and sub.end_reason == "dunning"
    _send_notices()
    subjects = [m["Subject"] for m in smtp_mail.messages]
    assert subjects.count("Your payment did not go through: update your card") == 4
    cancelled = smtp_mail.messages[-1]
    assert cancelled["Subject"] == "Your subscription has been cancelled"
    page.goto(_link(cancelled, live_url, r"https?://\S+/account/subscriptions/\S+/"))
    expect(page.get_by_text("Cancelled")).to_be_visible()
    expect(page.get_by_role("link", name="Update the card")).to_have_count(0)
    assert gateway_charges(sub) == [] and Subscription.objects.count() == 1
