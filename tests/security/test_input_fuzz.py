"""Property tests for the input boundary: arbitrary text (NUL and lone surrogates included) in
every buyer page and post, the partner API and the gateway webhook never gives a 500, and a
refused request writes nothing.

Text goes on the wire as a client would send it: UTF-8 bytes (a lone surrogate as the bytes
Python's "surrogatepass" gives, which a server decodes as U+FFFD), percent-encoded in paths,
query strings and form bodies, Latin-1 in headers and cookies, and `\\u` escapes in JSON (where a
lone surrogate survives decoding, so it is the one that matters there).
"""

from __future__ import annotations

import itertools
import json
import urllib.parse

import pytest
from django.db import connection
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.models import Event
from audit.models import AuditEntry
from core.boundary import MAX_TEXT_LENGTH
from core.models import OutboxMessage
from offers.models import Offer
from partners.models import ApiKey, IdempotencyRecord
from partners.services import api_key_create
from payments.models import ChargeAttempt, WebhookEvent
from storefront.models import Customer, Order, OrderLine, Product
from tests.factories import ProductFactory, TaxRateFactory
from tests.payments.helpers import event as webhook_event
from tests.payments.helpers import signed

HOST = "t1.localhost"
FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=False,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# Any code point, surrogates included (st.text() leaves them out unless asked).
ANY_CHAR = st.characters(exclude_categories=())
TEXT = st.one_of(
    st.text(ANY_CHAR, max_size=30),
    st.builds(
        lambda a, b: f"{a}\x00{b}", st.text(ANY_CHAR, max_size=10), st.text(ANY_CHAR, max_size=10)
    ),
    st.builds(
        lambda a, s: f"{a}{s}",
        st.text(max_size=10),
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    ),
    st.sampled_from(
        [
            "\x00",
            "\ud800",
            "a\udfffb",
            "",
            "x" * (MAX_TEXT_LENGTH + 1),
            "'; DROP TABLE x; --",
            "\u202e",
            "%00",
            "\\u0000",
        ]
    ),
)

_addresses = itertools.count(1)


def _client(**extra) -> Client:
    # A fresh address per request: the per-address rate limits must not turn the run into 429s.
    n = next(_addresses)
    return Client(
        HTTP_HOST=HOST,
        REMOTE_ADDR=f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}",
        raise_request_exception=False,
        **extra,
    )


def _wire(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _q(text: str) -> str:
    return urllib.parse.quote(_wire(text), safe="")


def _form(data: dict[str, str]) -> bytes:
    return "&".join(f"{_q(k)}={_q(v)}" for k, v in data.items()).encode()


def _header(text: str) -> str:
    return _wire(text).decode("latin-1")  # what a WSGI server hands Django


def _rows() -> tuple[int, ...]:
    return (
        Order.objects.count(),
        OrderLine.objects.count(),
        Customer.objects.count(),
        Event.objects.count(),
        ChargeAttempt.objects.count(),
        WebhookEvent.objects.count(),
        Product.objects.count(),
        Offer.objects.count(),
        AuditEntry.objects.count(),
        OutboxMessage.objects.count(),
        IdempotencyRecord.objects.count(),
    )


def _boundary_refusal(response) -> bool:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(error, dict) and error.get("code") == "invalid_input"


def _check(response, before) -> None:
    assert response.status_code < 500, (response.status_code, response.content[:300])
    if response.status_code < 400:
        return
    after = _rows()
    if _boundary_refusal(response) or response.status_code == 400:
        # Nothing at all, not even an Idempotency-Key record: a request refused for its input
        # is not kept for replay (partners/api/idempotency.py), as at Stripe.
        assert after == before, "a request refused for its input wrote rows"
    else:
        # A refusal after the input was accepted (a 409) is kept under its Idempotency-Key so
        # that a retry gets the same answer: a replay record, not data.
        assert after[:-1] == before[:-1], "a refused request wrote rows"


@pytest.fixture
def shop(tenant):
    TaxRateFactory(country="DE", rate="19.000")
    core = ProductFactory(slug="course", name="Photo course", price_amount=4900)
    customer = Customer.objects.create(email="fuzz@example.com")
    order = Order.objects.create(
        token="fuzztoken123", customer=customer, currency="USD", country="US"
    )
    OrderLine.objects.create(
        order=order,
        kind="core",
        product=core,
        description=core.name,
        net_amount=4900,
        tax_amount=0,
        total_amount=4900,
        currency="USD",
        tax_rate=0,
        tax_inclusive=False,
        tax_country="US",
    )
    return core, order


# --- buyer pages and posts -----------------------------------------------------------------


@FUZZ
@given(
    source=TEXT,
    medium=TEXT,
    name=TEXT,
    value=TEXT,
    path=st.sampled_from(["/p/course/", "/", "/checkout/course/"]),
)
def test_any_text_in_a_product_page_query_is_never_a_500(shop, source, medium, name, value, path):
    query = f"utm_source={_q(source)}&utm_medium={_q(medium)}&{_q(name)}={_q(value)}"
    before = _rows()
    _check(_client().get(f"{path}?{query}"), before)


@pytest.mark.gateway
@settings(FUZZ, max_examples=10)
@given(source=TEXT, campaign=TEXT, referer=TEXT)
def test_any_campaign_link_leaves_a_checkout_that_starts(
    shop, stripe_api_base, source, campaign, referer
):
    client = _client(HTTP_REFERER=_header(referer))
    page = client.get(f"/p/course/?utm_source={_q(source)}&utm_campaign={_q(campaign)}")
    assert page.status_code == 200
    started = client.post(
        "/checkout/course/start",
        {"email": "buyer@example.com", "country": "DE", "region": "", "save_card": "on"},
    )
    assert started.status_code == 200, started.content[:300]
    order = Order.objects.get(token=started.json()["order"])
    assert "\x00" not in order.utm_source + order.utm_campaign + order.referrer


@FUZZ
@given(email=TEXT, country=TEXT, region=TEXT, bump=TEXT)
def test_any_text_in_the_checkout_quote_and_prefill_is_never_a_500(
    shop, email, country, region, bump
):
    before = _rows()
    query = (
        f"email={_q(email)}&country={_q(country)}&region={_q(region)}&bump={_q(bump)}&add_bump=on"
    )
    _check(_client().get(f"/checkout/course/quote?{query}"), before)
    # The checkout page without JavaScript: a POST recomputes the totals.
    _check(
        _client().post(
            "/checkout/course/",
            _form({"email": email, "country": country, "region": region}),
            content_type="application/x-www-form-urlencoded",
        ),
        before,
    )


@FUZZ
@given(
    field=st.sampled_from(
        ["email", "country", "region", "bump", "add_bump", "save_card", "expected_total", "other"]
    ),
    value=TEXT,
)
def test_any_text_in_a_checkout_start_field_is_never_a_500_and_a_refusal_writes_nothing(
    shop, field, value
):
    data = {"email": "buyer@example.com", "country": "ZZ", "region": ""}  # ZZ: never reaches
    data[field] = value  # the gateway unless the fuzzed field is the country itself
    if field == "country":
        data["email"] = "not-an-email"
    before = _rows()
    response = _client().post(
        "/checkout/course/start", _form(data), content_type="application/x-www-form-urlencoded"
    )
    _check(response, before)
    assert response.status_code == 400 and "application/json" in response["Content-Type"]


ORDER_GETS = ["thanks", "offer", "offer/status", "next"]
ORDER_POSTS = ["pay", "confirm", "offer/accept", "offer/decline", "offer/confirm", "offer/abandon"]


@FUZZ
@given(token=TEXT, step=st.sampled_from(ORDER_GETS + ORDER_POSTS))
def test_any_order_token_in_the_address_is_never_a_500(shop, token, step):
    before = _rows()
    client = _client()
    path = f"/o/{_q(token) or 'x'}/{step}"
    response = client.get(path) if step in ORDER_GETS else client.post(path)
    _check(response, before)


@FUZZ
@given(value=TEXT, step=st.sampled_from(ORDER_POSTS))
def test_any_text_in_an_order_post_body_is_never_a_500_and_charges_nothing(shop, value, step):
    _, order = shop
    before = _rows()
    body = _form({"token": value, "setup_intent": value})
    response = _client().post(
        f"/o/{order.token}/{step}", body, content_type="application/x-www-form-urlencoded"
    )
    _check(response, before)
    assert ChargeAttempt.objects.count() == 0


@FUZZ
@given(
    signed_part=TEXT,
    step=st.sampled_from(["f/{}", "f/{}/accept", "u/{}"]),
    method=st.sampled_from(["get", "post"]),
)
def test_any_follow_up_or_unsubscribe_link_is_never_a_500(shop, signed_part, step, method):
    before = _rows()
    path = "/" + step.format(_q(signed_part) or "x")
    response = getattr(_client(), method)(path)
    _check(response, before)
    assert Customer.objects.filter(unsubscribed_at__isnull=False).count() == 0


@FUZZ
@given(
    name=st.sampled_from(["sf_attr", "sessionid", "csrftoken", "other"]),
    value=st.one_of(TEXT, TEXT.map(lambda t: f"abcdefgh{t}\x00")),
    referer=TEXT,
    agent=TEXT,
)
def test_any_cookie_or_header_text_is_never_a_500(shop, name, value, referer, agent):
    before = _rows()
    client = _client(
        HTTP_COOKIE=f"{name}={_header(value)}",
        HTTP_REFERER=_header(referer),
        HTTP_USER_AGENT=_header(agent),
        HTTP_X_FORWARDED_FOR=_header(value),
    )
    _check(client.get("/p/course/"), before)
    _check(client.get(f"/o/{shop[1].token}/thanks"), before)
    _check(client.post("/checkout/course/start", {"email": "x"}), before)
    _check(client.get("/admin/"), before)  # reads the session behind the cookie


# --- the partner API -------------------------------------------------------------------------


@pytest.fixture
def api(shop):
    token = api_key_create(name="fuzz", scope=ApiKey.Scope.WRITE).token
    return shop, token


def _api_client(token: str, **extra) -> Client:
    return _client(HTTP_AUTHORIZATION=f"Bearer {token}", **extra)


JSON_VALUE = st.one_of(
    TEXT,
    st.integers(),
    st.none(),
    st.booleans(),
    st.lists(TEXT, max_size=3),
    st.dictionaries(TEXT, TEXT, max_size=2),
)


@FUZZ
@given(
    body=st.fixed_dictionaries(
        {
            "slug": TEXT,
            "name": TEXT,
            "price_amount": st.one_of(st.integers(0, 10**6), TEXT),
            "currency": TEXT,
        },
        optional={
            "description": TEXT,
            "tier": TEXT,
            "status": TEXT,
            "anchor_amount": JSON_VALUE,
            "extra": JSON_VALUE,
        },
    ),
    key=TEXT,
    target=st.sampled_from(["create", "update", "offer"]),
)
def test_any_text_in_an_api_write_is_never_a_500_and_a_refusal_writes_nothing(
    api, body, key, target
):
    (core, _), token = api
    client = _api_client(token, HTTP_IDEMPOTENCY_KEY=_header(key))
    raw = json.dumps(body)  # ensure_ascii: NUL and lone surrogates travel as \\u escapes
    before = _rows()
    if target == "create":
        response = client.post("/api/v1/products/", raw, content_type="application/json")
    elif target == "update":
        response = client.patch(
            f"/api/v1/products/{core.pk}/", raw, content_type="application/json"
        )
    else:
        offer = dict(
            body, kind="upsell", trigger_product=core.pk, product=core.pk, headline=body["name"]
        )
        response = client.post(
            "/api/v1/offers/", json.dumps(offer), content_type="application/json"
        )
    _check(response, before)
    if response.status_code >= 400:
        assert response.json()["error"]["code"], response.content


@FUZZ
@given(
    path=st.sampled_from(
        [
            "products/",
            "orders/",
            "customers/",
            "events/",
            "offers/",
            "experiments/",
            "metrics/funnel/",
            "orders/{order}/refunds/",
        ]
    ),
    name=st.sampled_from(
        [
            "search",
            "ordering",
            "status",
            "limit",
            "offset",
            "email",
            "created_after",
            "name",
            "from",
            "to",
            "product",
            "fuzz",
        ]
    ),
    value=TEXT,
    auth=st.one_of(st.none(), TEXT),
)
def test_any_text_in_an_api_read_query_or_header_is_never_a_500(api, path, name, value, auth):
    (_, order), token = api
    client = _api_client(token if auth is None else _header(auth))
    before = _rows()
    url = "/api/v1/" + path.format(order=order.pk) + f"?{_q(name)}={_q(value)}"
    response = client.get(url)
    _check(response, before)
    assert response["Content-Type"].startswith("application/json")


@FUZZ
@given(segment=TEXT, method=st.sampled_from(["get", "post", "delete"]))
def test_any_api_path_is_never_a_500(api, segment, method):
    _, token = api
    before = _rows()
    response = getattr(_api_client(token), method)(f"/api/v1/products/{_q(segment) or 'x'}/")
    _check(response, before)


@FUZZ
@given(amount=JSON_VALUE, reason=TEXT, key=TEXT)
def test_any_text_in_an_api_refund_is_never_a_500_and_refunds_nothing(api, amount, reason, key):
    (_, order), token = api
    client = _api_client(token, HTTP_IDEMPOTENCY_KEY=_header(key))
    before = _rows()
    response = client.post(
        f"/api/v1/orders/{order.pk}/refunds/",
        json.dumps({"amount": amount, "reason": reason}),
        content_type="application/json",
    )
    _check(response, before)
    assert response.status_code >= 400  # the order is not paid: nothing to refund


# --- the gateway webhook ---------------------------------------------------------------------


@FUZZ
@given(
    raw=st.one_of(
        st.binary(max_size=200), TEXT.map(_wire), JSON_VALUE.map(lambda v: json.dumps(v).encode())
    ),
    signature=TEXT,
    content_type=st.sampled_from(["application/json", "text/plain"]),
)
def test_any_unsigned_webhook_body_is_refused_without_a_500_or_a_row(
    tenant, raw, signature, content_type
):
    before = _rows()
    response = _client(HTTP_STRIPE_SIGNATURE=_header(signature)).post(
        "/webhooks/stripe/", raw, content_type=content_type
    )
    _check(response, before)
    assert response.status_code == 400


@FUZZ
@given(
    event_id=TEXT,
    event_type=TEXT,
    object_type=TEXT,
    object_id=TEXT,
    path=st.sampled_from(["/webhooks/stripe/", "/webhooks/stripe/t1/"]),
)
def test_any_text_in_a_signed_webhook_is_never_a_500(
    tenant, event_id, event_type, object_type, object_id, path
):
    evt = webhook_event(event_id, event_type, object_type, object_id)
    body, header = signed(evt)
    before = _rows()
    host = HOST if path == "/webhooks/stripe/" else "localhost"
    client = _client()
    client.defaults["HTTP_HOST"] = host
    response = client.post(
        path, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )
    connection.set_tenant(tenant)  # the platform endpoint leaves the public schema behind
    _check(response, before)
    bad = any(
        ("\x00" in s or any(0xD800 <= ord(c) <= 0xDFFF for c in s))
        for s in (event_id, event_type, object_type, object_id)
    )
    if bad:
        assert response.status_code == 400
