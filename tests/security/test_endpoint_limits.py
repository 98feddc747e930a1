"""The real buyer endpoints that charge or change a buyer's state are rate limited per address
and per order, with 429 and Retry-After, and one tenant's flood leaves another's alone."""

import pytest
from django.test import Client

from tests.factories import ProductFactory


def _client(host="t1.localhost", address="198.51.100.9") -> Client:
    return Client(HTTP_HOST=host, REMOTE_ADDR=address)


def _flood(client, path, times, data=None):
    return [client.post(path, data or {}).status_code for _ in range(times)]


def test_checkout_start_is_limited_per_address(tenant):
    ProductFactory(slug="course")
    codes = _flood(_client(), "/checkout/course/start", 31, {"email": "bad"})
    assert codes[:30] == [400] * 30  # refused as bad input, but counted
    assert codes[30] == 429


@pytest.mark.parametrize("action", ["accept", "decline", "confirm"])
def test_one_click_posts_are_limited_per_order_across_addresses(tenant, action):
    path = f"/o/some-order-token/offer/{action}"
    codes = [
        _client(address=f"198.51.100.{i}").post(path, {"token": "forged"}).status_code
        for i in range(61)
    ]
    assert 429 not in codes[:60]
    assert codes[60] == 429


def test_a_limited_one_click_post_says_when_to_retry(tenant):
    client = _client()
    for _ in range(30):
        client.post("/o/tok/offer/accept", {"token": "x"})
    refused = client.post("/o/tok/offer/accept", {"token": "x"})
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0


def test_unsubscribe_links_are_limited_per_address(tenant):
    client = _client()
    codes = [client.get(f"/u/forged-{i}").status_code for i in range(31)]
    assert 429 not in codes[:30] and codes[30] == 429


def test_one_tenants_flood_of_checkouts_does_not_limit_another_tenant(tenant, other_tenant):
    ProductFactory(slug="course")
    _flood(_client(), "/checkout/course/start", 31, {"email": "bad"})
    assert _client().post("/checkout/course/start", {"email": "bad"}).status_code == 429
    other = _client(host="t2.localhost").post("/checkout/course/start", {"email": "bad"})
    assert other.status_code != 429
