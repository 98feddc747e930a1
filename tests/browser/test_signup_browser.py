"""A new creator, start to finish in headless Chromium: signs up on the platform's domain, opens
the link from the local SMTP server, lands logged into their store's admin on the checklist,
then connects payouts through the local one-click onboarding page.

With SCREENSHOTS=1 the creator's path is saved at 1280 px to artifacts/screenshots/creator-*.png
on the way (the README's tour keeps a copy of each in docs/screenshots/)."""

from __future__ import annotations

import re
import time

import pytest
from django.db import connection
from django.test import override_settings
from django_tenants.utils import tenant_context
from playwright.sync_api import expect

from tests.browser_support import screenshot
from tests.followups.smtp import smtp_start, text_of

pytestmark = [pytest.mark.browser, pytest.mark.gateway]

SLUG = "browser-shop"
EMAIL = "new-creator@example.com"


def _shot(page, name: str) -> None:
    screenshot(page, f"creator-{name}-desktop")


@pytest.fixture
def committed(django_db_setup, django_db_blocker):
    """Real commits (the live server runs in another thread); the new store is removed after."""
    from tenants.models import Creator

    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        yield
        connection.set_schema_to_public()
        for creator in Creator.objects.filter(slug__in=[SLUG, "webhook-shop"]):
            creator.delete(force_drop=True)  # drops its schema too (auto_drop_schema)


@pytest.fixture
def smtp():
    controller, collector = smtp_start()
    with override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=controller.port,
        EMAIL_USE_TLS=False,
        EMAIL_USE_SSL=False,
        EMAIL_HOST_USER="",
        EMAIL_HOST_PASSWORD="",
        SIGNUP_MIN_FILL_SECONDS=1,
    ):
        yield collector
    controller.stop()


def _mail_to(collector, address: str, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = collector.to(address)
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no mail reached {address}")


def test_a_new_creator_signs_up_verifies_and_connects_payouts_from_the_checklist(
    page, committed, smtp, live_server_port, stripe_api_base
):
    from payments.models import PayoutAccount
    from tenants.models import Creator

    platform = f"http://localhost:{live_server_port}"
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{platform}/")
    page.get_by_role("link", name="Open your store").click()
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill("a-long-Passphrase-42")
    page.get_by_label("Store name").fill("Browser Shop")
    page.get_by_label("Subdomain").fill(SLUG)
    # The honeypot is for bots only: its box takes no room on the page (CSP forbids inline
    # styles, so it is hidden by the stylesheet).
    trap = page.locator("#id_website").locator("xpath=..").bounding_box()
    assert trap is not None and trap["width"] <= 1 and trap["height"] <= 1, trap
    _shot(page, "signup")
    page.wait_for_timeout(1100)  # people take longer than the minimum fill time
    page.get_by_role("button", name="Open my store").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    _shot(page, "check-email")

    creator = Creator.objects.get(slug=SLUG)
    assert creator.email_verified_at is None

    (message,) = _mail_to(smtp, EMAIL)
    link = re.search(r"http://\S+/signup/verify/\S+/", text_of(message)).group(0)
    page.goto(link)
    page.get_by_role("button", name="Confirm and go to my store").click()

    expect(page.get_by_role("heading", name="Get Browser Shop ready")).to_be_visible()
    assert page.url == f"http://{SLUG}.localhost:{live_server_port}/admin/getting-started/"
    checklist = page.locator("#getting-started")
    expect(checklist.locator('[data-item="verify_email"]')).to_have_attribute("data-done", "true")
    for item in ("connect_payouts", "add_product", "arrange_ladder", "preview_store"):
        expect(checklist.locator(f'[data-item="{item}"]')).to_have_attribute("data-done", "false")
    _shot(page, "checklist")

    page.get_by_role("button", name="Connect payouts").click()
    expect(page.get_by_role("heading", name="Set up payouts", exact=True)).to_be_visible()
    assert page.url.startswith(stripe_api_base + "/connect/onboarding/")
    _shot(page, "onboarding")
    page.get_by_role("button", name="Complete onboarding").click()

    expect(page.get_by_role("heading", name="Get Browser Shop ready")).to_be_visible()
    expect(checklist.locator('[data-item="connect_payouts"]')).to_have_attribute(
        "data-done", "true"
    )
    expect(page.locator("#checklist-progress")).to_have_text("2 of 5 done.")
    _shot(page, "checklist-connected")
    with tenant_context(Creator.objects.get(slug=SLUG)):
        account = PayoutAccount.objects.get()
        assert account.charges_enabled and account.payouts_enabled
    connection.set_schema_to_public()

    page.get_by_role("button", name="Preview your store").click()
    expect(page.get_by_role("heading", name="Browser Shop")).to_be_visible()
    assert Creator.objects.get(slug=SLUG).previewed_at is not None


def test_the_local_servers_account_updated_event_updates_the_store_over_http(
    committed, live_server_port, stripe_api_base
):
    """No return visit: only the signed webhook from the local server can tell the store."""
    import urllib.error
    import urllib.request

    from django.conf import settings

    from devtools.services import localstripe_register_webhook
    from payments import connect
    from payments.models import PayoutAccount
    from tenants.services import creator_create

    localstripe_register_webhook(
        stripe_api_base,
        f"http://localhost:{live_server_port}/webhooks/stripe-connect/",
        settings.STRIPE_WEBHOOK_SECRET,
        name="connect-browser-test",
    )
    creator = creator_create(
        slug="webhook-shop",
        display_name="Webhook Shop",
        domain="webhook-shop.localhost",
        owner_email="w@example.com",
        self_serve=True,
    ).creator
    with tenant_context(creator):
        link = connect.payout_account_connect(
            refresh_url="http://webhook-shop.localhost/r",
            return_url="http://webhook-shop.localhost/b",
        )

        class Stay(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        try:
            urllib.request.build_opener(Stay).open(
                urllib.request.Request(link, data=b"", method="POST"), timeout=5
            )
        except urllib.error.HTTPError as exc:
            assert exc.code == 302
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not PayoutAccount.objects.get().charges_enabled:
            time.sleep(0.1)
        account = PayoutAccount.objects.get()
        assert account.charges_enabled and account.payouts_enabled and account.details_submitted
    connection.set_schema_to_public()
