"""Partner writes that must be unique, sent at the same moment by a partner's retrying
workers (without an Idempotency-Key): the first is made, the others get a 4xx that says why,
never a 500 from the database's unique constraint."""

from __future__ import annotations

import itertools
import json

import pytest
from django.db import connection
from django.test import Client

from offers.models import Coupon
from partners.models import ApiKey
from partners.services import api_key_create
from storefront.models import Product
from tests.concurrency import in_threads

HOST = "t1.localhost"


@pytest.mark.parametrize(
    ("path", "body", "model", "lookup"),
    [
        (
            "/api/v1/products/",
            {"name": "Race course", "slug": "race-course", "price_amount": 1500},
            Product,
            {"slug": "race-course"},
        ),
        (
            "/api/v1/coupons/",
            {"code": "RACE10", "kind": "percent", "percent_off": "10.00"},
            Coupon,
            {"code__iexact": "RACE10"},
        ),
    ],
)
def test_the_same_unique_write_sent_at_once_makes_one_row_and_no_500(
    live_tenant, path, body, model, lookup
):
    token = api_key_create(name="racer", scope=ApiKey.Scope.WRITE).token
    addresses = itertools.count(1)

    def create():
        n = next(addresses)
        client = Client(
            HTTP_HOST=HOST,
            HTTP_AUTHORIZATION=f"Bearer {token}",
            HTTP_IDEMPOTENCY_KEY=f"race-{n}",  # each worker its own request
            REMOTE_ADDR=f"203.0.113.{n}",
            raise_request_exception=False,
        )
        response = client.post(path, json.dumps(body), content_type="application/json")
        return response.status_code, response.content[:300]

    results, errors = in_threads(8, create)
    assert errors == []
    statuses = sorted(status for status, _ in results)
    assert all(status < 500 for status in statuses), results
    assert statuses.count(201) == 1, results
    connection.set_tenant(live_tenant)
    assert model.objects.filter(**lookup).count() == 1
