"""Every buyer page of two differently branded stores, with pictures, in real Chromium:
axe-core at 375 and 1280 px, our own HTML+CSS+JS within 30 KB (pictures and fonts counted
apart and reported), no layout shift, and the largest picture each page loads."""

from __future__ import annotations

import json

import pytest

from tests.browser.branding_tour import BRANDS, brand_the_store
from tests.browser.test_buyer_pages import (
    BUDGET_BYTES,
    EXPECTED_STATUS,
    VIEWPORTS,
    _all_pages,
    _goto,
)
from tests.browser.tour import demo_catalog, tour_pages
from tests.browser_support import ARTIFACTS, AXE_RUN, Network, axe_context, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.gateway, pytest.mark.slow]

# Pages that show a picture of a product (the rest show the logo, or nothing on Django's
# bare error pages, which render without the store's context).
PICTURED = {"store-index", "product", "checkout", "upsell", "downsell", "follow-up-offer"}
# Pages that show the offered product's thumbnail beside its benefit (the same include).
OFFER_PICTURED = {"upsell", "downsell", "follow-up-offer"}

CLS_SCRIPT = """async () => {
  // Two animation frames: the browser has laid out (and measured the shifts of) what changed.
  const frames = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  let total = 0;
  const seen = [];
  const take = (entries) => {
    for (const e of entries) {
      if (e.hadRecentInput) continue;
      total += e.value;
      const nodes = e.sources.map((s) => s.node ? (s.node.id || s.node.className
                                                   || s.node.nodeName) : '?');
      seen.push([e.value, nodes]);
    }
  };
  const observer = new PerformanceObserver((list) => take(list.getEntries()));
  observer.observe({type: 'layout-shift', buffered: true});
  // Scroll through the page so every lazy picture loads (each step is rendered, so the
  // browser sees the pictures near it), then let it settle.
  for (let y = 0; y <= document.body.scrollHeight; y += 300) {
    window.scrollTo(0, y);
    await frames();
  }
  await Promise.all([...document.images].map((i) => i.complete ? null
    : new Promise((r) => { i.onload = i.onerror = r; })));
  await document.fonts.ready;
  await frames();  // the pictures and the fonts laid out: any shift they cause is recorded
  take(observer.takeRecords());
  observer.disconnect();
  return {total, seen, images: document.images.length,
          loaded: [...document.images].filter((i) => i.complete && i.naturalWidth > 0).length};
}"""


@pytest.fixture(params=sorted(BRANDS))
def branded(request, live_tenant, stripe_api_base, media_root):
    catalog = demo_catalog()
    spec = BRANDS[request.param]
    brand_the_store(spec)
    return spec, tour_pages(catalog)


def test_every_branded_page_has_no_axe_violations_at_phone_and_desktop_width(
    browser, live_url, branded
):
    spec, tour = branded
    violations: dict[str, list] = {}
    audited = []
    for width, viewport in VIEWPORTS.items():
        context = axe_context(browser, viewport, bypass_csp=True)
        page = context.new_page()  # one tab: each page of the tour is a new document in it
        network = Network(page)
        for name in _all_pages(tour):
            response = _goto(page, live_url, tour, name)
            assert response.status == EXPECTED_STATUS.get(name, 200), (name, response.status)
            network.settle()
            if name in PICTURED:
                assert page.locator("picture img").count() >= 1, name
            if name in OFFER_PICTURED:
                assert page.locator(".offer-intro picture img.thumb").count() == 1, name
            if name in tour.pages:  # the store's own pages wear the brand
                assert page.evaluate("document.documentElement.className") == (
                    f"scheme-{spec.scheme}"
                ), name
            result = page.evaluate(AXE_RUN)
            assert len(result["passes"]) >= 10, (name, "axe checked next to nothing")
            found = [
                (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
                for v in result["violations"]
            ]
            if found:
                violations[f"{name} @ {width}"] = found
            audited.append(f"{name} @ {width}")
            screenshot(page, f"brand-{spec.key}-{name}-{width}")
        context.close()
    assert len(audited) == 2 * len(_all_pages(tour)) >= 2 * 15
    assert violations == {}, json.dumps(violations, indent=1)


def _kind(response) -> str:
    path = response.url.split("?")[0]
    if response.request.resource_type == "image" or "/m/img/" in path:
        return "images"
    if response.request.resource_type == "font" or path.endswith(".woff2"):
        return "fonts"
    return "own"


def test_each_branded_page_keeps_our_code_within_30_kb_never_shifts_and_reports_its_pictures(
    browser, live_url, branded
):
    spec, tour = branded
    report: dict[str, dict] = {}
    for width, viewport in VIEWPORTS.items():
        for name in tour.pages:
            context = browser.new_context(viewport=viewport)
            page = context.new_page()
            responses = []
            page.on("response", lambda r, seen=responses: seen.append(r))
            network = Network(page)
            page.goto(live_url + tour.pages[name])
            network.settle()
            cls = page.evaluate(CLS_SCRIPT)
            network.settle()
            own = [r for r in responses if r.url.startswith(live_url)]
            totals = {"own": 0, "images": 0, "fonts": 0}
            largest = (0, "")
            for r in own:
                sizes = r.request.sizes()
                size = sizes["responseBodySize"] + sizes["responseHeadersSize"]
                kind = _kind(r)
                totals[kind] += size
                if kind == "images" and sizes["responseBodySize"] > largest[0]:
                    largest = (sizes["responseBodySize"], r.url[len(live_url) :])
            report[f"{name} @ {width}"] = {
                "own_html_css_js_bytes": totals["own"],
                "image_bytes": totals["images"],
                "font_bytes": totals["fonts"],
                "largest_image_bytes": largest[0],
                "largest_image": largest[1],
                "layout_shift": round(cls["total"], 4),
                "images_on_page": cls["images"],
                "images_loaded": cls["loaded"],
                "shifts": cls["seen"],
            }
            assert cls["loaded"] == cls["images"], (name, width, cls)
            if name in PICTURED:
                assert totals["images"] > 0 and largest[0] > 0, (name, width)
                # The browser picked a modern format from the srcset, not the JPEG fallback.
                assert largest[1].endswith((".avif", ".webp")), (name, largest)
            if spec.typeface != "system":
                assert totals["fonts"] > 0, (name, width, "the brand's typeface was not loaded")
            context.close()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"branded-page-weight-{spec.key}.json").write_text(json.dumps(report, indent=1))
    over = {
        k: v["own_html_css_js_bytes"]
        for k, v in report.items()
        if v["own_html_css_js_bytes"] > BUDGET_BYTES
    }
    assert over == {}, json.dumps(report, indent=1)
    shifted = {k: v["shifts"] for k, v in report.items() if v["layout_shift"] != 0}
    assert shifted == {}, shifted
    assert len(report) == 2 * len(tour.pages)
