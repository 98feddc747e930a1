"""The store admin in real headless Chromium, as a creator sees it: the home, the insights
page, an offer's page and an order with a refund, at 1280 px and 375 px, with axe-core (0
violations) on those and on the changelists and add forms a creator uses most. With
SCREENSHOTS=1 they are saved to artifacts/screenshots/admin-*.png (copies of a few are kept in
docs/screenshots/)."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from offers.models import Offer, OfferKind
from storefront.models import OrderLine
from tests.analytics.workload import HOST, run_workload
from tests.browser.test_buyer_pages import VIEWPORTS
from tests.browser_support import AXE_RUN, axe_context, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.gateway, pytest.mark.slow]

OWNER, PASSWORD = "owner", "owner-pass-123"


def _login(context, live_url: str):
    """Log the owner in; returns the tab, where each page to audit is then opened in turn."""
    page = context.new_page()
    page.goto(f"{live_url}/admin/login/?next=/admin/")
    page.fill("#id_username", OWNER)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_url}/admin/")
    return page


def _audit(page, live_url: str, pages: dict[str, str], *, shots: bool, width: str):
    """Open each page; axe it; screenshot it. Returns {page: violations}."""
    found: dict[str, list] = {}
    for name, path in pages.items():
        response = page.goto(live_url + path)
        assert response.status == 200, (name, response.status)
        page.wait_for_load_state("load")
        assert "/admin/login/" not in page.url, name
        result = page.evaluate(AXE_RUN)
        assert len(result["passes"]) >= 10, (name, "axe checked next to nothing")
        bad = [
            (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
            for v in result["violations"]
        ]
        if bad:
            found[f"{name} @ {width}"] = bad
        if shots:
            screenshot(page, f"admin-{name}-{width}")
    return found


def audit_at_both_widths(browser, live_url, shown, audited_only, on_desktop) -> dict:
    """axe on every page at 1280 and 375 px, screenshots of `shown`, then `on_desktop(context)`
    (the page's own checks) once. Returns {page @ width: violations}."""
    violations: dict[str, list] = {}
    for width, viewport in VIEWPORTS.items():
        context = axe_context(browser, viewport, bypass_csp=True)
        page = _login(context, live_url)  # one tab for the tour
        violations |= _audit(page, live_url, shown, shots=True, width=width)
        violations |= _audit(page, live_url, audited_only, shots=False, width=width)
        if width == "desktop":
            on_desktop(context)
        context.close()
    return violations


def test_the_store_admin_reads_at_a_glance_and_passes_axe_at_desktop_and_phone_widths(
    browser, live_url, live_tenant, stripe_api_base
):
    violations: dict[str, list] = {}
    # A fresh store first: the dashboard's empty states, not empty axes.
    for width, viewport in VIEWPORTS.items():
        context = axe_context(browser, viewport, bypass_csp=True)
        page = _login(context, live_url)
        violations |= _audit(
            page,
            live_url,
            {"home-empty": "/admin/", "dashboard-empty": "/admin/analytics/dashboard/"},
            shots=True,
            width=width,
        )
        context.close()

    owner = Client(HTTP_HOST=HOST)
    assert owner.login(username=OWNER, password=PASSWORD)
    w = run_workload(owner)
    refunded = OrderLine.objects.filter(order=w.orders["c"], kind="bump").get()
    assert refunded.order.refunds.exists() if hasattr(refunded.order, "refunds") else True
    upsell = Offer.objects.filter(kind=OfferKind.UPSELL).order_by("pk").first()
    shown = {
        "home": "/admin/",
        "dashboard": "/admin/analytics/dashboard/",
        "offer": f"/admin/offers/offer/{upsell.pk}/change/",
        "order-refunded": f"/admin/storefront/order/{refunded.order_id}/change/",
    }
    audited_only = {
        "orders": "/admin/storefront/order/",
        "offers": "/admin/offers/offer/",
        "products": "/admin/storefront/product/",
        "refunds": "/admin/payments/refund/",
        "product-add": "/admin/storefront/product/add/",
        "offer-add": "/admin/offers/offer/add/",
        "settings-section": "/admin/section/settings/",
    }

    def checks(context) -> None:
        page = context.new_page()
        page.goto(live_url + "/admin/")
        text = page.inner_text("#content-main")
        for section in ("Sell", "Orders and customers", "Money", "Insights", "Settings"):
            assert section.upper() in text.upper()
        assert "Sales, net of refunds" in text and "Needs attention" in text
        page.goto(live_url + "/admin/analytics/dashboard/")
        assert page.locator("#offer-leaderboard tbody tr").count() == Offer.objects.count()
        assert page.locator("svg[role=img]").count() >= 3
        assert "minor units" not in page.content()
        page.goto(live_url + shown["order-refunded"])
        assert "Refund" in page.inner_text("#content")
        page.close()

    violations |= audit_at_both_widths(browser, live_url, shown, audited_only, checks)
    assert violations == {}, json.dumps(violations, indent=1)
