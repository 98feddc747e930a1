"""The creator's brand page in Chromium: a failing accent refused with the reason, a draft
saved and shown in the phone (375 px) and desktop (1280 px) frames under the pages' CSP, then
published to buyers."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from storefront.models import Product
from tests.browser.conftest import ARTIFACTS
from tests.browser_support import screenshot
from tests.factories import ProductFactory

pytestmark = [pytest.mark.browser]


def test_the_creator_previews_a_draft_brand_at_both_widths_then_publishes_it(
    browser, live_url, live_tenant, media_root
):
    ProductFactory(slug="course", name="Photo course", status=Product.Status.ACTIVE)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    csp_errors: list[str] = []
    page.on(
        "console",
        lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.goto(f"{live_url}/admin/login/?next=/admin/brand/")
    page.get_by_label("Username").fill("owner")
    page.get_by_label("Password").fill("owner-pass-123")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Brand and preview")).to_be_visible()

    page.locator("#id_accent_color").fill("#ffcc00")
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator("#brand-error")).to_contain_text("Not saved")
    expect(page.locator("#accent_color-errors")).to_contain_text("WCAG 2.2 AA")

    page.locator("#id_accent_color").fill("#7a1fa2")
    page.get_by_label("Lora (serif)").check()
    page.get_by_label("Your name").fill("Mara Lind")
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator("#brand-notice")).to_contain_text("Draft saved")

    for frame_id, width in (("#preview-phone", 375), ("#preview-desktop", 1280)):
        frame = page.frame_locator(frame_id)
        expect(frame.get_by_role("heading", name="Photo course")).to_be_visible()
        inner = frame.locator("html")
        assert inner.evaluate("() => window.innerWidth") == width
        assert (
            inner.evaluate(
                "() => getComputedStyle(document.body).getPropertyValue('--accent').trim()"
            )
            == "#7a1fa2"
        )
    screenshot(page, "brand-admin-desktop")

    buyer = context.new_page()
    buyer.goto(f"{live_url}/p/course/")
    assert "/brand/" not in buyer.content()  # not yet published
    page.get_by_role("button", name="Publish the draft").click()
    expect(page.locator("#brand-notice")).to_contain_text("Published")
    buyer.goto(f"{live_url}/p/course/")
    accent = buyer.evaluate("getComputedStyle(document.body).getPropertyValue('--accent')")
    assert accent.strip() == "#7a1fa2"
    assert csp_errors == []
    ARTIFACTS.mkdir(exist_ok=True)
    context.close()
