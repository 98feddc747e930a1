"""Partner API: coupons. Created with an Idempotency-Key (a retry makes no second coupon),
changed and paused with audit rows, bad values refused with a reason, other stores' coupons
invisible."""

from __future__ import annotations

import json

from audit.models import AuditEntry
from offers.models import Coupon
from tests.factories import CouponFactory, ProductFactory

HOST = "t1.localhost"


def _post(client, data, key="key-1"):
    return client.post(
        "/api/v1/coupons/",
        json.dumps(data),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


def test_creating_a_coupon_needs_an_idempotency_key_and_a_retry_makes_no_second_one(
    api_for, write_key
):
    client = api_for(HOST, write_key)
    product = ProductFactory()
    body = {
        "code": "LAUNCH",
        "kind": "fixed",
        "amount_off": 500,
        "applies_to_all": False,
        "product_ids": [product.pk],
        "max_redemptions": 100,
    }
    missing = client.post("/api/v1/coupons/", json.dumps(body), content_type="application/json")
    assert missing.status_code == 400 and Coupon.objects.count() == 0
    first = _post(client, body)
    assert first.status_code == 201, first.content
    again = _post(client, body)
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Coupon.objects.count() == 1
    made = first.json()
    assert made["product_ids"] == [product.pk] and made["times_redeemed"] == 0
    entry = AuditEntry.objects.get(action="offers.coupon.add")
    assert entry.actor_kind == "api_key" and entry.changes["amount_off"] == [None, 500]


def test_changing_and_pausing_a_coupon_through_the_api_is_audited(api_for, write_key):
    coupon = CouponFactory(code="SUMMER", max_redemptions=10, times_redeemed=3)
    client = api_for(HOST, write_key)
    response = client.patch(
        f"/api/v1/coupons/{coupon.pk}/",
        json.dumps({"max_redemptions": 50, "active": False}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["active"] is False and response.json()["times_redeemed"] == 3
    entry = AuditEntry.objects.get(action="offers.coupon.change")
    assert entry.changes == {"max_redemptions": [10, 50], "active": [True, False]}


def test_bad_coupon_values_get_a_reason_and_nothing_is_written(api_for, write_key):
    CouponFactory(code="TAKEN")
    client = api_for(HOST, write_key)
    cases = [
        ({"code": "taken", "kind": "percent", "percent_off": "10"}, "code", "already exists"),
        ({"code": "two words", "kind": "percent", "percent_off": "10"}, "code", "only letters"),
        ({"code": "BIG", "kind": "percent", "percent_off": "150"}, "percent_off", "at most 100"),
        ({"code": "NOAMT", "kind": "fixed"}, "amount_off", "Enter the amount off"),
        (
            {"code": "NOPROD", "kind": "percent", "percent_off": "10", "applies_to_all": False},
            "product_ids",
            "Name the products",
        ),
        (
            {
                "code": "BACKWARDS",
                "kind": "percent",
                "percent_off": "10",
                "starts_at": "2026-06-01T00:00:00Z",
                "ends_at": "2026-05-01T00:00:00Z",
            },
            "ends_at",
            "after the start",
        ),
    ]
    for n, (body, field, words) in enumerate(cases):
        response = _post(client, body, key=f"bad-{n}")
        assert response.status_code == 400, (body, response.content)
        assert words in " ".join(response.json()["error"]["fields"][field]), response.json()
    assert list(Coupon.objects.values_list("code", flat=True)) == ["TAKEN"]
    assert not AuditEntry.objects.filter(action="offers.coupon.add").exists()


def test_a_read_key_cannot_create_and_another_store_sees_none_of_them(
    api_for, write_key, read_key, other_tenant
):
    from django_tenants.utils import schema_context

    from partners.models import ApiKey
    from partners.services import api_key_create

    mine = CouponFactory(code="MINE")
    reader = api_for(HOST, read_key)
    assert _post(reader, {"code": "X", "kind": "percent", "percent_off": "5"}).status_code == 403
    assert [c["code"] for c in reader.get("/api/v1/coupons/").json()["results"]] == ["MINE"]
    with schema_context(other_tenant.schema_name):
        theirs = api_key_create(name="them", scope=ApiKey.Scope.READ).token
    other = api_for("t2.localhost", theirs)
    assert other.get("/api/v1/coupons/").json()["results"] == []
    assert other.get(f"/api/v1/coupons/{mine.pk}/").status_code == 404


def test_an_order_shows_its_coupon_and_each_lines_discount(api_for, read_key):
    from storefront.models import Customer, Order, OrderLine
    from tests.factories import ProductFactory

    product = ProductFactory()
    order = Order.objects.create(
        token="with-coupon",
        customer=Customer.objects.create(email="c@example.com"),
        currency="USD",
        country="US",
        coupon_code="SPRING20",
    )
    OrderLine.objects.create(
        order=order,
        kind="core",
        product=product,
        description="x",
        discount_amount=980,
        net_amount=3920,
        tax_amount=0,
        total_amount=3920,
        currency="USD",
        tax_rate=0,
        tax_inclusive=False,
        tax_country="US",
    )
    body = api_for(HOST, read_key).get(f"/api/v1/orders/{order.pk}/").json()
    assert body["coupon_code"] == "SPRING20" and body["recovered_from_id"] is None
    assert [(line["discount_amount"], line["total_amount"]) for line in body["lines"]] == [
        (980, 3920)
    ]


def test_the_active_filter_takes_true_or_false_and_refuses_anything_else(api_for, read_key):
    CouponFactory(code="ON")
    CouponFactory(code="OFF", active=False)
    reader = api_for(HOST, read_key)
    for value, codes in (("true", ["ON"]), ("false", ["OFF"]), ("1", ["ON"])):
        response = reader.get("/api/v1/coupons/", {"active": value})
        assert [c["code"] for c in response.json()["results"]] == codes, value
    for value in ("null", "unknown", "yes please"):
        response = reader.get("/api/v1/coupons/", {"active": value})
        assert response.status_code == 400, value
        assert "true or false" in json.dumps(response.json())
