"""Rate limits per tenant, scope and address / order; 429 with Retry-After; fair across tenants."""

import logging

import pytest
from django.db import connection
from django.test import Client, RequestFactory
from django_tenants.utils import tenant_context

from core import ratelimit
from core.ratelimit import Rate, client_address, client_ip, ratelimit_key

pytestmark = pytest.mark.urls("tests.security.urls")


def client(host="t1.localhost", address="203.0.113.7") -> Client:
    return Client(HTTP_HOST=host, REMOTE_ADDR=address)


@pytest.fixture
def clock(monkeypatch):
    """Redis keeps the windows; this moves the time the limiter reads (milliseconds)."""
    now = {"ms": 1_900_000_000_000}
    monkeypatch.setattr(ratelimit, "_clock_ms", lambda: now["ms"])

    def advance(seconds: float) -> None:
        now["ms"] += int(seconds * 1000)

    return advance


def test_requests_over_the_address_limit_get_429_with_retry_after(tenant, clock):
    c = client()
    for order in ("a", "b", "c"):
        assert c.get(f"/_sec/limited/{order}/").status_code == 200
    refused = c.get("/_sec/limited/d/")
    assert refused.status_code == 429
    assert refused["Retry-After"] == "60"
    assert b"Try again in 60 seconds" in refused.content


def test_retry_after_is_when_the_oldest_hit_leaves_the_sliding_window(tenant, clock):
    c = client()
    for order in ("a", "b", "c"):
        assert c.get(f"/_sec/limited/{order}/").status_code == 200
        clock(10)
    refused = c.get("/_sec/limited/d/")  # 30 s after the first hit
    assert refused.status_code == 429 and refused["Retry-After"] == "30"
    clock(29)
    assert c.get("/_sec/limited/d/").status_code == 429
    clock(1)
    assert c.get("/_sec/limited/d/").status_code == 200


def test_the_order_limit_holds_across_addresses(tenant, clock):
    assert client(address="198.51.100.1").get("/_sec/limited/o-1/").status_code == 200
    assert client(address="198.51.100.2").get("/_sec/limited/o-1/").status_code == 200
    refused = client(address="198.51.100.3").get("/_sec/limited/o-1/")
    assert refused.status_code == 429 and int(refused["Retry-After"]) == 60
    assert client(address="198.51.100.3").get("/_sec/limited/o-2/").status_code == 200


def test_a_refused_request_spends_none_of_its_other_budgets(tenant, clock):
    c = client()
    assert c.get("/_sec/limited/same/").status_code == 200
    assert c.get("/_sec/limited/same/").status_code == 200
    assert c.get("/_sec/limited/same/").status_code == 429  # order budget (2/m) spent
    # The address budget (3/m) was charged twice, not three times.
    assert c.get("/_sec/limited/other/").status_code == 200
    assert c.get("/_sec/limited/third/").status_code == 429


def test_one_tenants_flood_does_not_starve_another_tenants_requests(tenant, other_tenant, clock):
    flooder = client(host="t1.localhost", address="192.0.2.50")
    statuses = [flooder.get(f"/_sec/limited/t1-{i}/").status_code for i in range(10)]
    assert statuses.count(200) == 3 and statuses.count(429) == 7
    same_address_other_store = client(host="t2.localhost", address="192.0.2.50")
    assert same_address_other_store.get("/_sec/limited/t2-1/").status_code == 200
    # And the same order id on t2 is another order: its budget is untouched.
    assert client(host="t2.localhost").get("/_sec/limited/t1-0/").status_code == 200


def test_rate_limit_keys_name_the_tenant_schema_and_hash_the_identity(tenant, other_tenant):
    key = ratelimit_key(scope="checkout", dimension="address", identity="192.0.2.50")
    assert key.startswith("ratelimit:t1:checkout:address:") and "192.0.2.50" not in key
    with tenant_context(other_tenant):
        assert ratelimit_key(scope="checkout", dimension="address", identity="192.0.2.50") != key


def test_a_method_filter_limits_only_those_methods(tenant, clock):
    c = client()
    assert [c.post("/_sec/unsubscribe/").status_code for _ in range(3)] == [200, 200, 429]
    assert c.get("/_sec/unsubscribe/").status_code == 200


def test_api_clients_get_a_json_429(tenant, clock):
    c = client()
    for _ in range(2):
        c.post("/_sec/unsubscribe/")
    refused = c.post("/_sec/unsubscribe/", HTTP_ACCEPT="application/json")
    assert refused.status_code == 429
    assert refused.json() == {
        "error": "rate_limited",
        "detail": refused.json()["detail"],
        "retry_after": 60,
    }


def test_the_limiter_lets_requests_through_when_redis_is_down(tenant, monkeypatch, caplog):
    def down():
        raise ConnectionError("redis is down")

    monkeypatch.setattr(ratelimit, "_redis", down)
    c = client()
    with caplog.at_level(logging.WARNING, logger="core.ratelimit"):
        assert all(c.get(f"/_sec/limited/{i}/").status_code == 200 for i in range(5))
    assert "Redis unavailable" in caplog.text


@pytest.mark.parametrize(
    "text, rate",
    [
        ("10/m", Rate(10, 60)),
        ("5/15m", Rate(5, 900)),
        ("100/h", Rate(100, 3600)),
        ("2/s", Rate(2, 1)),
    ],
)
def test_rates_are_parsed_from_short_strings(text, rate):
    assert Rate.parse(text) == rate


@pytest.mark.parametrize("text", ["10", "0/m", "ten/m", "10/w", "-1/m"])
def test_malformed_rates_are_refused_when_the_view_is_decorated(text):
    with pytest.raises(ValueError):
        ratelimit.rate_limit("x", per_address=text)


def test_forwarded_for_is_ignored_unless_a_proxy_is_trusted(settings):
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9"
    )
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_ip(request) == "10.0.0.2"
    settings.TRUSTED_PROXY_COUNT = 1
    assert (
        client_ip(request) == "203.0.113.9"
    )  # the hop our proxy appended, not the spoofable first


def test_ipv6_clients_share_one_budget_per_64_block():
    a = RequestFactory().get("/", REMOTE_ADDR="2001:db8:1:2::1")
    b = RequestFactory().get("/", REMOTE_ADDR="2001:db8:1:2:ffff::9")
    c = RequestFactory().get("/", REMOTE_ADDR="2001:db8:1:3::1")
    assert client_address(a) == client_address(b) == "2001:db8:1:2::/64"
    assert client_address(c) != client_address(a)
    assert client_ip(a) == "2001:db8:1:2::1"


def test_the_limiter_reads_the_tenant_from_the_connection(tenant):
    assert connection.schema_name == "t1"
    assert ratelimit_key(scope="s", dimension="d", identity="i").split(":")[1] == "t1"
