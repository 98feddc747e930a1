"""Store and product page views: once per visitor per page per window, no robots, no
prefetches, no personal data, and a page that is served whether or not its view is counted."""

from __future__ import annotations

import re

import pytest
from django.core import signing
from django.core.cache import cache
from django.test import Client

from analytics import pageviews
from analytics.models import Event
from analytics.rollups import rollups_refresh
from storefront.attribution import COOKIE
from tests.factories import ProductFactory

HOST = "t1.localhost"
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15"


@pytest.fixture
def product(tenant):
    return ProductFactory(slug="course", price_amount=4900)


def _browser(address: str = "198.51.100.20", agent: str = BROWSER, **headers) -> Client:
    return Client(HTTP_HOST=HOST, REMOTE_ADDR=address, HTTP_USER_AGENT=agent, **headers)


def _views():
    pageviews.page_views_flush()  # as every rollups_refresh does first
    return list(Event.objects.filter(name="page_viewed").order_by("pk"))


def test_a_product_page_view_is_recorded_once_per_visitor_in_the_window(product):
    browser = _browser()
    for _ in range(3):
        assert browser.get("/p/course/?utm_source=ig").status_code == 200
    assert browser.get("/").status_code == 200
    [on_product, on_store] = _views()
    cookie = signing.loads(browser.cookies[COOKIE].value, salt=COOKIE)
    assert on_product.visitor_id == on_store.visitor_id == cookie["visitor_id"]
    assert (on_product.product_id, on_product.source) == (product.pk, "ig")
    assert on_product.properties == {"page": "/p/course/"}
    assert on_store.product_id is None and on_store.properties == {"page": "/"}


def test_two_browsers_are_two_visitors(product):
    _browser("198.51.100.20").get("/p/course/")
    _browser("198.51.100.21").get("/p/course/")
    assert len({e.visitor_id for e in _views()}) == 2


def test_a_browser_refusing_cookies_is_still_one_visitor_for_the_day(product):
    for _ in range(3):
        Client(
            HTTP_HOST=HOST,
            REMOTE_ADDR="198.51.100.30",
            HTTP_USER_AGENT=BROWSER,
            enforce_csrf_checks=False,
        ).get("/p/course/")
    assert len(_views()) == 1


def test_the_visitor_id_holds_no_address_or_agent_and_changes_with_the_days_salt(product):
    browser = _browser("198.51.100.44")
    browser.get("/p/course/")
    [view] = _views()
    # A 16-hex digest: neither the address as text nor its four bytes (c6336424) in hex.
    # (Not "no 198 anywhere": a random digest holds any three given digits 0.3 % of the time.)
    assert re.fullmatch(r"[0-9a-f]{16}", view.visitor_id)
    assert "198.51" not in view.visitor_id and "c6336424" not in view.visitor_id
    first = view.visitor_id
    pageviews.local_state_clear()
    cache.clear()  # a new day: a new salt
    _browser("198.51.100.44").get("/p/course/")
    assert _views()[-1].visitor_id != first


@pytest.mark.parametrize(
    "agent",
    [
        "",
        "Googlebot/2.1 (+http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0)",
        "facebookexternalhit/1.1",
        "curl/8.5.0",
        "python-requests/2.32",
        "Mozilla/5.0 HeadlessChrome/120.0",
    ],
)
def test_robots_are_not_visitors(product, agent):
    assert _browser(agent=agent).get("/p/course/").status_code == 200
    assert _views() == []


@pytest.mark.parametrize(
    "header",
    [
        {"HTTP_SEC_PURPOSE": "prefetch"},
        {"HTTP_SEC_PURPOSE": "prefetch;prerender"},
        {"HTTP_PURPOSE": "prefetch"},
        {"HTTP_X_MOZ": "prefetch"},
    ],
)
def test_prefetches_are_not_views(product, header):
    assert _browser(**header).get("/p/course/").status_code == 200
    assert _views() == []


def test_the_page_is_served_when_the_view_cannot_be_queued(product, monkeypatch):
    def broken():
        raise ConnectionError("redis unavailable")

    monkeypatch.setattr(pageviews, "_redis", broken)
    monkeypatch.setattr(pageviews, "_script", None)
    assert _browser().get("/p/course/").status_code == 200
    monkeypatch.undo()
    assert _views() == []


def test_views_wait_in_the_queue_until_a_refresh_moves_them_once(product):
    _browser("198.51.100.50").get("/p/course/")
    _browser("198.51.100.51").get("/p/course/")
    assert not Event.objects.filter(name="page_viewed").exists()  # queued, not yet written
    assert rollups_refresh()["events"] == 2  # the refresh flushes first, then counts them
    assert Event.objects.filter(name="page_viewed").count() == 2
    assert pageviews.page_views_flush() == 0


def test_an_unreadable_queued_view_is_skipped_and_the_rest_are_moved(product):
    pageviews._redis().rpush(cache.make_key(pageviews.QUEUE), b"not json")
    _browser().get("/p/course/")
    assert pageviews.page_views_flush() == 1
    assert Event.objects.filter(name="page_viewed").count() == 1


def test_a_flush_takes_the_queue_in_batches(product):
    for n in range(5):
        _browser(f"198.51.100.{60 + n}").get("/p/course/")
    assert pageviews.page_views_flush(batch=2) == 5
    assert Event.objects.filter(name="page_viewed").count() == 5
