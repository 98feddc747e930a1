"""Server time and query count of each buyer page, on the demo ladder (not a browser test)."""

from __future__ import annotations

import json
import os
import statistics
import time

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from storefront.models import FollowUpSend, Product
from storefront.services import followups
from tests.browser.conftest import ARTIFACTS
from tests.browser.tour import CORE, HOST, buy, demo_catalog, offer_token
from tests.factories import CouponFactory

pytestmark = [pytest.mark.gateway]

# The 30 ms server-time target is checked when PAGE_SPEED_BUDGET_MS is set (bench/README.md:
# `PAGE_SPEED_BUDGET_MS=30 bin/test tests/browser/test_page_speed.py` on a quiet machine). In
# the ordinary suite it is only recorded: a wall-clock bound fails whenever the two shared
# cores are busy, which says nothing about the page. The query budgets always hold.
SERVER_MS = float(os.environ.get("PAGE_SPEED_BUDGET_MS", "0") or 0)
# Queries each page may run (SET search_path is the tenancy router's, budgeted elsewhere).
QUERY_BUDGET = {
    "store-index": 2,
    "product": 2,
    "checkout": 5,
    # With a coupon applied (from a ?coupon= link): no more than without one.
    "checkout-coupon": 5,
    "checkout-coupon-products": 5,
    "upsell": 4,
    "downsell": 3,
    # + each line's state (its refunds) and the invoices; + the access rows when a product
    # has a download limit or license keys, and credit notes when there are invoices.
    "thank-you": 5,
    "follow-up-offer": 6,
    "unsubscribe": 4,
    "error-404": 1,
    "error-403-download": 0,
}


def _business_queries(context) -> list[str]:
    # SAVEPOINTs come from the test's own wrapping transaction: production runs these
    # atomic blocks outermost (BEGIN/COMMIT, which Django does not log as queries).
    skipped = ("SET search_path", "SAVEPOINT", "RELEASE SAVEPOINT")
    return [q["sql"] for q in context.captured_queries if not q["sql"].startswith(skipped)]


@pytest.fixture
def pages(tenant, stripe_api_base):
    catalog = demo_catalog()
    core = Product.objects.get(slug=CORE)
    # A browser's User-Agent, so the product and store pages count their view as they do for a
    # buyer (after the first request, the view is already counted: one Redis SET NX).
    client = Client(HTTP_HOST=HOST, HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0")
    first = buy(client, email="speed-taker@example.com", bump_id=catalog.bump_id)
    offer_token(client, first)
    second = buy(client, email="speed-decliner@example.com")
    client.post(f"/o/{second.token}/offer/decline", {"token": offer_token(client, second)})
    send = FollowUpSend.objects.filter(order=first).order_by("step").first()
    CouponFactory(code="SPEED20")
    CouponFactory(code="CORE10", percent_off="10.00", applies_to_all=False, products=[core])
    return client, {
        "store-index": "/",
        "product": f"/p/{CORE}/",
        "checkout": f"/checkout/{CORE}/",
        "checkout-coupon": f"/checkout/{CORE}/?coupon=SPEED20",
        "checkout-coupon-products": f"/checkout/{CORE}/?coupon=CORE10",
        "upsell": f"/o/{first.token}/offer",
        "downsell": f"/o/{second.token}/offer",
        "thank-you": f"/o/{first.token}/thanks",
        "follow-up-offer": "/f/" + followups.accept_token(send=send, schema="t1"),
        "unsubscribe": "/u/"
        + followups.unsubscribe_token(customer_id=second.customer_id, schema="t1"),
        "error-404": "/p/no-such-product/",
        "error-403-download": "/d/not-a-valid-link",
    }


def test_each_buyer_page_runs_a_bounded_number_of_queries_and_its_server_time_is_recorded(pages):
    client, paths = pages
    figures = {}
    assert paths
    for name, path in paths.items():
        for _ in range(2):  # warm: templates compiled, offer already presented, connection open
            client.get(path)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(path)
        # Read now: the next request's request_started signal empties the connection's log.
        sql = _business_queries(queries)
        assert response.status_code in (200, 403, 404), (name, response.status_code)
        assert response.status_code == 200 or name.startswith("error-"), name
        timings = []
        for _ in range(9):
            start = time.perf_counter()
            client.get(path)
            timings.append((time.perf_counter() - start) * 1000)
        figures[name] = {
            "best_ms": round(min(timings), 2),
            "median_ms": round(statistics.median(timings), 2),
            "queries": len(sql),
            "sql": [q[:100] for q in sql],
        }
    # The coupon pages did apply their coupon (the budget is for that page, not an error).
    assert "Discount (SPEED20, 20% off)" in client.get(paths["checkout-coupon"]).content.decode()
    assert (
        "Discount (CORE10, 10% off)"
        in client.get(paths["checkout-coupon-products"]).content.decode()
    )
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "page-speed.json").write_text(json.dumps(figures, indent=1))
    # The best of nine runs is the page's own cost (timeit's convention); the median, kept in
    # the artifact, also carries whatever else the two shared cores were doing.
    if SERVER_MS:
        slow = {n: f["best_ms"] for n, f in figures.items() if f["best_ms"] >= SERVER_MS}
        assert slow == {}, json.dumps(figures, indent=1)
    over = {n: f["queries"] for n, f in figures.items() if f["queries"] > QUERY_BUDGET[n]}
    assert over == {}, json.dumps(figures, indent=1)
