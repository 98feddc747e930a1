"""The served schema allows nothing the server refuses (issue 20.6): no NUL in strings, no
empty decimals, the exact Idempotency-Key; and the server refuses numbers for strings."""

import re

import pytest

from offers.models import Offer
from storefront.models import Product
from tests.factories import OfferFactory

HOST = "t1.localhost"


@pytest.fixture
def schema(api_for, tenant):
    return api_for(HOST, None).get("/api/v1/schema/", {"format": "json"}).json()


def _strings(node, where=""):
    if isinstance(node, dict):
        if node.get("type") == "string":
            yield where, node
        for key, value in node.items():
            yield from _strings(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _strings(item, f"{where}[{i}]")


def _allows(node, text: str) -> bool:
    if "enum" in node:
        return text in node["enum"]
    pattern = node.get("pattern")
    return pattern is None or re.search(pattern, text) is not None


def test_no_string_in_the_schema_allows_a_nul(schema):
    strings = list(_strings(schema["components"])) + list(_strings(schema["paths"]))
    assert len(strings) > 50
    loose = [
        where
        for where, node in strings
        if node.get("format") not in ("date-time", "date", "email", "uri", "uuid")
        and _allows(node, "a\x00b")
    ]
    assert loose == []


def test_no_decimal_in_the_schema_allows_an_empty_string(schema):
    decimals = [
        (where, node)
        for where, node in _strings(schema["components"])
        if node.get("format") == "decimal"
    ]
    assert decimals
    for where, node in decimals:
        for bad in ("", "-", ".", "-."):
            assert not _allows(node, bad), (where, bad)
        assert _allows(node, "0.5") and _allows(node, ".5"), where


def test_the_idempotency_key_header_is_documented_with_its_exact_pattern(schema):
    [param] = [
        p
        for p in schema["paths"]["/api/v1/orders/{id}/refunds/"]["post"]["parameters"]
        if p["name"] == "Idempotency-Key"
    ]
    assert param["required"] and param["schema"]["maxLength"] == 255
    assert param["schema"]["minLength"] == 1
    assert _allows(param["schema"], "3f2c1e9a-5b6d-4c8e-9f0a-1b2c3d4e5f60")
    for bad in ("with space", "é", "x" * 256, ""):
        assert not (_allows(param["schema"], bad) and 1 <= len(bad) <= 255), bad


@pytest.mark.gateway
def test_an_idempotency_key_outside_the_pattern_is_refused_before_anything_happens(
    api_for, write_key, stripe_api_base
):
    from payments.models import Refund
    from tests.api.conftest import paid_order

    order = paid_order()
    api = api_for(HOST, write_key)
    for key in ("with space", "x" * 256, "tab\there"):
        response = api.post(
            f"/api/v1/orders/{order.pk}/refunds/",
            {"line_id": order.lines.get().pk},
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=key,
        )
        assert response.status_code == 400, (key, response.content)
        assert response.json()["error"]["code"] == "idempotency_key_required"
    assert not Refund.objects.exists()


def test_an_empty_decimal_is_refused_by_the_server(api_for, write_key):
    response = api_for(HOST, write_key).post(
        "/api/v1/experiments/",
        {"name": "e", "kind": "bump_price", "baseline_rate": ""},
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    assert "baseline_rate" in response.json()["error"]["fields"]


@pytest.mark.parametrize("value", [5, 5.5, True, ["x"], {"x": 1}])
def test_a_number_or_other_non_string_for_a_string_field_is_refused(api_for, write_key, value):
    api = api_for(HOST, write_key)
    product = api.post(
        "/api/v1/products/",
        {"slug": "s-1", "name": value, "price_amount": 100},
        content_type="application/json",
    )
    assert product.status_code == 400, product.content
    assert "name" in product.json()["error"]["fields"]
    numeric_slug = api.post(
        "/api/v1/products/",
        {"slug": 123, "name": "n", "price_amount": 1},
        content_type="application/json",
    )
    assert numeric_slug.status_code == 400
    assert "slug" in numeric_slug.json()["error"]["fields"]
    assert not Product.objects.exists()
    offer = OfferFactory()
    paused = api.post(
        f"/api/v1/offers/{offer.pk}/pause/", {"reason": value}, content_type="application/json"
    )
    assert paused.status_code == 400, paused.content
    assert Offer.objects.get(pk=offer.pk).status == Offer.Status.ACTIVE
