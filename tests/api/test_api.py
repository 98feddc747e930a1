"""Partner API: keys and scopes, errors, pagination and filters, offers' guardrails, schema."""

import pytest
from django.db import connection

from analytics.services import event_append
from partners.models import ApiKey
from partners.services import api_key_create, api_key_revoke
from tests.factories import OfferFactory, ProductFactory


def test_products_are_listed_in_ladder_order_for_a_key_of_this_store(api_for, read_key):
    ProductFactory(slug="premium", ladder_position=3)
    ProductFactory(slug="entry", ladder_position=1)
    response = api_for("t1.localhost", read_key).get("/api/v1/products/")
    assert response.status_code == 200, response.content
    assert [p["slug"] for p in response.json()["results"]] == ["entry", "premium"]


def test_a_request_without_a_key_gets_401_with_the_error_body(api_for, tenant):
    response = api_for("t1.localhost", None).get("/api/v1/orders/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_key_is_refused_and_a_used_key_records_its_last_use(api_for, tenant):
    issued = api_key_create(name="x", scope=ApiKey.Scope.READ)
    assert api_for("t1.localhost", issued.token).get("/api/v1/products/").status_code == 200
    issued.api_key.refresh_from_db()
    assert issued.api_key.last_used_at is not None
    api_key_revoke(key=issued.api_key)
    response = api_for("t1.localhost", issued.token).get("/api/v1/products/")
    assert response.status_code == 401


def test_a_tampered_secret_with_a_real_prefix_is_refused(api_for, read_key):
    forged = read_key[:-4] + ("AAAA" if not read_key.endswith("AAAA") else "BBBB")
    assert api_for("t1.localhost", forged).get("/api/v1/products/").status_code == 401


def test_a_read_key_cannot_write(api_for, read_key):
    core = ProductFactory(price_amount=5000)
    addon = ProductFactory(price_amount=1500)
    response = api_for("t1.localhost", read_key).post(
        "/api/v1/offers/",
        {
            "kind": "bump",
            "trigger_product_id": core.pk,
            "product_id": addon.pk,
            "price_amount": 900,
            "headline": "h",
            "benefit": "b",
        },
        content_type="application/json",
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_an_offer_above_half_the_cart_is_refused_unless_explicitly_allowed(api_for, write_key):
    core = ProductFactory(price_amount=4000)
    addon = ProductFactory(price_amount=3000)
    api = api_for("t1.localhost", write_key)
    body = {
        "kind": "bump",
        "trigger_product_id": core.pk,
        "product_id": addon.pk,
        "price_amount": 2500,
        "headline": "Pro pack",
        "benefit": "Now",
    }
    refused = api.post("/api/v1/offers/", body, content_type="application/json")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "price_guardrail"
    assert "price_amount" in refused.json()["error"]["fields"]
    allowed = api.post(
        "/api/v1/offers/", body | {"allow_high_price": True}, content_type="application/json"
    )
    assert allowed.status_code == 201, allowed.content
    assert allowed.json()["warnings"] and "62.5%" in allowed.json()["warnings"][0]


def test_offers_can_be_paused_and_resumed_and_a_second_live_bump_is_a_conflict(api_for, write_key):
    offer = OfferFactory(price_amount=900)
    api = api_for("t1.localhost", write_key)
    second = {
        "kind": "bump",
        "trigger_product_id": offer.trigger_product_id,
        "product_id": offer.product_id,
        "price_amount": 900,
        "headline": "h",
        "benefit": "b",
    }
    conflict = api.post("/api/v1/offers/", second, content_type="application/json")
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "offer_conflict"
    paused = api.post(
        f"/api/v1/offers/{offer.pk}/pause/",
        {"reason": "refunds up"},
        content_type="application/json",
    )
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    resumed = api.post(f"/api/v1/offers/{offer.pk}/resume/", content_type="application/json")
    assert resumed.json()["status"] == "active"


def test_bad_input_gets_a_validation_error_body_with_fields(api_for, write_key):
    response = api_for("t1.localhost", write_key).post(
        "/api/v1/offers/", {"kind": "nonsense", "price_amount": -1}, content_type="application/json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert {"kind", "price_amount", "trigger_product_id"} <= set(error["fields"])


def test_malformed_json_is_a_400_not_a_500(api_for, write_key):
    response = api_for("t1.localhost", write_key).post(
        "/api/v1/offers/", "{not json", content_type="application/json"
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"


def test_events_are_filtered_and_cursor_paginated_newest_first(api_for, read_key):
    for i in range(5):
        event_append("page_viewed", source="newsletter" if i % 2 == 0 else "ads", order_id=i + 1)
    api = api_for("t1.localhost", read_key)
    first = api.get("/api/v1/events/", {"source": "newsletter", "page_size": 2}).json()
    assert [e["order_id"] for e in first["results"]] == [5, 3]
    second = api.get(first["next"]).json()
    assert [e["order_id"] for e in second["results"]] == [1] and second["next"] is None
    by_order = api.get("/api/v1/events/", {"order_id": 4}).json()["results"]
    assert [e["order_id"] for e in by_order] == [4]
    bad = api.get("/api/v1/events/", {"occurred_after": "yesterday-ish"})
    assert bad.status_code == 400 and "occurred_after" in bad.json()["error"]["fields"]


def test_a_key_over_its_rate_gets_429_with_retry_after(api_for, tenant):
    issued = api_key_create(name="slow", scope=ApiKey.Scope.READ, rate_per_minute=3)
    api = api_for("t1.localhost", issued.token)
    codes = [api.get("/api/v1/products/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = api.get("/api/v1/products/")
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited["Retry-After"]) <= 60


def test_the_schema_generates_without_warnings_or_errors(tenant):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


def test_the_schema_and_docs_are_served_on_the_store_domain(api_for, tenant):
    schema = api_for("t1.localhost", None).get("/api/v1/schema/", {"format": "json"})
    assert schema.status_code == 200
    assert "/api/v1/orders/{id}/refunds/" in schema.json()["paths"]
    assert api_for("t1.localhost", None).get("/api/v1/docs/").status_code == 200


def test_an_unknown_api_path_is_a_json_404(api_for, read_key):
    response = api_for("t1.localhost", read_key).get("/api/v1/nope/")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


@pytest.fixture
def _on_t1_after(tenant):
    yield
    connection.set_tenant(tenant)
