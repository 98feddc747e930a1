"""Coupons in the store admin: added and changed with an audit row, bad values refused at the
field, the redemption counter never editable by hand."""

from __future__ import annotations

import pytest

from audit.models import AuditEntry
from offers.models import Coupon
from tests.admin.conftest import audited
from tests.factories import CouponFactory, ProductFactory

ADMIN = "/admin/offers/coupon"


def _form(**overrides) -> dict:
    data = {
        "code": "SPRING20",
        "kind": "percent",
        "percent_off": "20",
        "amount_off": "",
        "currency": "USD",
        "applies_to_all": "on",
        "starts_at_0": "",
        "starts_at_1": "",
        "ends_at_0": "",
        "ends_at_1": "",
        "max_redemptions": "100",
        "max_per_customer": "1",
        "active": "on",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_adding_a_coupon_in_the_admin_is_audited(owner_client):
    response = owner_client.post(f"{ADMIN}/add/", _form())
    assert response.status_code == 302, response.content[:2000]
    coupon = Coupon.objects.get(code="SPRING20")
    entry = audited("offers.coupon.add", object_id=coupon.pk)
    assert entry.changes["max_redemptions"] == [None, 100]
    listing = owner_client.get(f"{ADMIN}/").content.decode()
    assert "SPRING20" in listing and "20% off" in listing


def test_changing_a_coupon_in_the_admin_is_audited_and_its_count_is_not_editable(owner_client):
    coupon = CouponFactory(code="SUMMER", times_redeemed=4, max_redemptions=10)
    product = ProductFactory()
    response = owner_client.post(
        f"{ADMIN}/{coupon.pk}/change/",
        _form(
            code="SUMMER",
            max_redemptions="20",
            applies_to_all=None,
            products=str(product.pk),
            times_redeemed="0",
        ),
    )
    assert response.status_code == 302, response.content[:2000]
    coupon.refresh_from_db()
    assert coupon.max_redemptions == 20 and coupon.times_redeemed == 4
    assert list(coupon.products.all()) == [product]
    assert audited("offers.coupon.change", object_id=coupon.pk).changes["max_redemptions"] == [
        10,
        20,
    ]


@pytest.mark.parametrize(
    ("overrides", "field_message"),
    [
        ({"code": "spring20"}, "A coupon with this code already exists (codes ignore case)."),
        ({"code": "two words"}, "A code has only letters, digits, - and _."),
        ({"percent_off": "120"}, "Enter a percentage above 0 and at most 100."),
        ({"kind": "fixed", "percent_off": ""}, "Enter the amount off, e.g. 5.00."),
        (
            {
                "starts_at_0": "2026-06-01",
                "starts_at_1": "00:00",
                "ends_at_0": "2026-05-01",
                "ends_at_1": "00:00",
            },
            "The end must come after the start.",
        ),
    ],
)
def test_bad_coupon_values_are_refused_at_the_field_and_nothing_is_written(
    owner_client, overrides, field_message
):
    CouponFactory(code="SPRING20")
    response = owner_client.post(f"{ADMIN}/add/", _form(**overrides))
    assert response.status_code == 200
    assert field_message in response.content.decode()
    assert Coupon.objects.count() == 1
    assert not AuditEntry.objects.filter(action="offers.coupon.add").exists()
