"""This session's new endpoints answer bad input with a 4xx and write nothing: a NUL byte, a
lone surrogate, a list where an object is expected, a number where a string is (the input
boundary, core/boundary.py, and the API's parser; the serializers for types)."""

from __future__ import annotations

import pytest

from offers.models import Coupon
from partners.models import IdempotencyRecord
from storefront.models import PrivacyRequest

HOST = "t1.localhost"
BODIES = [
    '{"code": "A\\u0000B", "kind": "percent", "percent_off": 10}',
    '{"email": "a\\ud800@b.example", "kind": "export"}',
    '["not", "an", "object"]',
    '{"key": 12345, "email": ["x"], "kind": {"a": 1}}',
]
POSTS = [
    "/api/v1/coupons/",
    "/api/v1/licenses/verify/",
    "/api/v1/privacy-requests/",
]


@pytest.mark.parametrize("path", POSTS)
@pytest.mark.parametrize("body", BODIES)
def test_new_api_posts_refuse_bad_json_with_a_4xx(api_for, write_key, path, body):
    client = api_for(HOST, write_key)
    answer = client.post(
        path, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="bad-input-1"
    )
    assert 400 <= answer.status_code < 500, (path, body, answer.status_code)
    assert answer["Content-Type"].startswith("application/json")
    assert not Coupon.objects.exists() and not PrivacyRequest.objects.exists()
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        "email=a%00b%40c.example",
        "email=a%ED%A0%80%40b.example",  # a lone surrogate, as its UTF-8-shaped bytes
        "email=x&email=y",
    ],
)
def test_the_magic_link_form_never_answers_bad_text_with_a_500(tenant, client_for, body):
    answer = client_for(HOST).post(
        "/purchases/", body, content_type="application/x-www-form-urlencoded"
    )
    assert answer.status_code in (200, 400), answer.status_code


@pytest.mark.parametrize("body", BODIES)
def test_the_mail_events_webhook_refuses_bad_json_with_a_4xx(db, client_for, body):
    answer = client_for("localhost").post("/webhooks/mail/", body, content_type="application/json")
    assert 400 <= answer.status_code < 500, (body, answer.status_code)
