"""The browser tests run Debian's Chromium as its headless shell (tests/browser_support.py);
here the full `chromium` shows the buyer's main pages exactly as the shell does: the same
boxes for the same headings, fields, buttons and links, and no axe violation."""

from __future__ import annotations

import json
import os

import pytest

from tests.browser.tour import demo_catalog, tour_pages
from tests.browser_support import AXE_RUN, CHROMIUM, HEADLESS_SHELL, LAUNCH_ARGS, axe_context

pytestmark = [pytest.mark.browser, pytest.mark.gateway]

PAGES = ("store-index", "product", "checkout", "upsell", "thank-you")
VIEWPORT = {"width": 1280, "height": 800}

# Each visible heading, field, button and link: what it is, what it says, where it is.
LAYOUT = """() => [...document.querySelectorAll('h1, h2, h3, label, input, select, button, a')]
  .filter((e) => e.offsetParent !== null)
  .map((e) => {
    const r = e.getBoundingClientRect();
    return [e.tagName, (e.innerText || e.value || e.name || '').trim().slice(0, 40),
            Math.round(r.x), Math.round(r.y), Math.round(r.width), Math.round(r.height)];
  })"""


def _layouts(browser, live_url: str, tour) -> dict[str, list]:
    context = axe_context(browser, VIEWPORT, bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    seen: dict[str, list] = {}
    violations: dict[str, list] = {}
    try:
        for name in PAGES:
            response = page.goto(live_url + tour.pages[name])
            assert response.status == 200, (name, response.status)
            page.wait_for_load_state("load")
            page.evaluate("document.fonts.ready")
            seen[name] = page.evaluate(LAYOUT)
            found = [v["id"] for v in page.evaluate(AXE_RUN)["violations"]]
            if found:
                violations[name] = found
    finally:
        context.close()
    assert errors == [] and violations == {}, (errors, violations)
    return seen


def test_the_full_chromium_lays_out_the_buyer_pages_as_the_headless_shell_does(
    browser, live_url, live_tenant, stripe_api_base
):
    if not (os.path.exists(CHROMIUM) and os.path.exists(HEADLESS_SHELL)):
        pytest.skip("needs both Debian's chromium and chromium-headless-shell")
    tour = tour_pages(demo_catalog())
    full = browser.browser_type.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
    try:
        in_full = _layouts(full, live_url, tour)
    finally:
        full.close()
    in_shell = _layouts(browser, live_url, tour)
    for name in PAGES:
        assert len(in_shell[name]) >= 3, (name, "the page showed next to nothing")
    assert in_full == in_shell, json.dumps({"full": in_full, "shell": in_shell}, indent=1)
