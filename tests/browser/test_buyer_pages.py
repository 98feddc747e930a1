"""The buyer's pages in real headless Chromium: axe-core, page weight, keyboard, screenshots."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.browser.tour import demo_catalog, tour_pages
from tests.browser_support import ARTIFACTS, AXE_RUN, Network, axe_context, screenshot
from tests.browser_support import axe_path as _axe_path

pytestmark = [pytest.mark.browser, pytest.mark.gateway]

VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 375, "height": 667}}
BUDGET_BYTES = 30 * 1024
EXPECTED_STATUS = {
    "offer-refused": 405,
    "error-404": 404,
    "error-403-download": 403,
    "error-400": 400,
    "error-500": 500,
    "error-403": 403,
    "error-403-csrf": 403,
}


@pytest.fixture
def tour(live_tenant, stripe_api_base):
    return tour_pages(demo_catalog())


def _goto(page, live_url: str, tour, name: str):
    """Open one page of the tour; pages no URL reaches are served as Django rendered them."""
    if name in tour.rendered:
        status, html = tour.rendered[name]
        url = f"{live_url}/__rendered/{name}"
        page.route(
            url,
            lambda route: route.fulfill(
                status=status, body=html, content_type="text/html; charset=utf-8"
            ),
        )
        return page.goto(url)
    return page.goto(live_url + tour.pages[name])


def _all_pages(tour) -> list[str]:
    return [*tour.pages, *tour.rendered]


def test_every_buyer_page_has_no_axe_violations_at_desktop_and_phone_widths(
    browser, live_url, tour
):
    violations: dict[str, list] = {}
    audited = []
    for width, viewport in VIEWPORTS.items():
        # bypass_csp as when axe came in a script tag; the pages are served unchanged.
        context = axe_context(browser, viewport, bypass_csp=True)
        page = context.new_page()  # one tab: each page of the tour is a new document in it
        for name in _all_pages(tour):
            response = _goto(page, live_url, tour, name)
            assert response.status == EXPECTED_STATUS.get(name, 200), (name, response.status)
            page.wait_for_load_state("load")
            result = page.evaluate(AXE_RUN)
            assert len(result["passes"]) >= 10, (name, "axe checked next to nothing")
            found = [
                (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
                for v in result["violations"]
            ]
            if found:
                violations[f"{name} @ {width}"] = found
            audited.append(f"{name} @ {width}")
            screenshot(page, f"{name}-{width}")
        context.close()
    assert len(audited) == 2 * len(_all_pages(tour)) >= 2 * 15
    assert violations == {}, json.dumps(violations, indent=1)


def test_a_checkout_error_is_announced_tied_to_its_field_and_passes_axe(browser, live_url, tour):
    axe = _axe_path()
    context = browser.new_context(viewport=VIEWPORTS["phone"], bypass_csp=True)
    page = context.new_page()
    page.goto(live_url + tour.pages["checkout"])
    page.get_by_label("Email").fill("not-an-email")
    pay = page.get_by_role("button", name="Pay")
    expect(pay).to_be_enabled(timeout=10000)
    pay.click()
    email = page.get_by_label("Email")
    expect(page.locator("#email-error")).to_contain_text("valid email")
    expect(page.get_by_role("alert").first).to_contain_text("Error:")
    expect(email).to_have_attribute("aria-invalid", "true")
    assert "email-error" in email.get_attribute("aria-describedby").split()
    expect(email).to_be_focused()
    page.add_script_tag(path=str(axe))
    assert page.evaluate(AXE_RUN)["violations"] == []
    context.close()


def _tab_to(page, selector: str, limit: int = 40) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} is not reachable with the Tab key")


def _focus_ring(page) -> tuple[str, float]:
    return page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, parseFloat(s.outlineWidth)]; }"
    )


def test_the_bump_checkbox_and_the_offer_buttons_work_by_keyboard_with_a_visible_focus(
    page, live_url, tour
):
    page.goto(live_url + tour.pages["checkout"])
    page.get_by_label("Country").select_option("DE")
    expect(page.locator("#tax")).to_contain_text("9.31")
    page.locator("body").click(position={"x": 1, "y": 1})
    _tab_to(page, "#id_add_bump")
    assert _focus_ring(page)[0] != "none" and _focus_ring(page)[1] >= 2
    page.keyboard.press("Space")
    expect(page.locator("#id_add_bump")).to_be_checked()
    expect(page.locator("#total")).to_contain_text("69.02")  # 4900+931 + 900+171

    page.goto(live_url + tour.pages["upsell"])
    _tab_to(page, "#accept-button")
    assert _focus_ring(page)[0] != "none" and _focus_ring(page)[1] >= 2
    _tab_to(page, "#decline-button", limit=3)
    assert _focus_ring(page)[0] != "none" and _focus_ring(page)[1] >= 2
    page.keyboard.press("Enter")
    expect(page.locator("#offer")).to_have_attribute("data-kind", "downsell")


def test_each_buyer_page_transfers_at_most_30_kb_of_our_own_html_css_and_js(
    browser, live_url, tour
):
    weights: dict[str, dict] = {}
    assert tour.pages
    for name in tour.pages:
        context = browser.new_context(viewport=VIEWPORTS["phone"])
        page = context.new_page()
        responses = []
        page.on("response", lambda r, seen=responses: seen.append(r))
        network = Network(page)
        page.goto(live_url + tour.pages[name])
        network.settle()
        own = [r for r in responses if r.url.startswith(live_url)]
        sizes = {r.url[len(live_url) :][:60]: r.request.sizes() for r in own}
        transferred = sum(s["responseBodySize"] + s["responseHeadersSize"] for s in sizes.values())
        document = own[0]
        weights[name] = {
            "transferred_bytes": transferred,
            "document_encoding": document.headers.get("content-encoding", "identity"),
            "resources": {url: s["responseBodySize"] for url, s in sizes.items()},
        }
        kinds = {r.request.resource_type for r in own}
        assert {"document", "stylesheet"} <= kinds, (name, kinds)  # the page was really measured
        # Our HTML leaves the server gzip-compressed (static files too, by whitenoise in
        # production; the test server sends them raw, so their count here is an upper bound).
        assert weights[name]["document_encoding"] == "gzip", (name, document.headers)
        context.close()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "page-weight.json").write_text(json.dumps(weights, indent=1))
    over = {
        n: w["transferred_bytes"]
        for n, w in weights.items()
        if w["transferred_bytes"] > BUDGET_BYTES
    }
    assert over == {}, json.dumps(weights, indent=1)
    assert len(weights) == len(tour.pages)
