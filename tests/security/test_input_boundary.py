"""The input boundary (core/boundary.py): NUL, lone surrogates and over-long text never reach
the database or a cookie, and never give a 500, whichever way a request carries them."""

import json

import pytest
from django.core import signing
from django.db import connection
from django.test import Client

from analytics.models import Event
from audit.models import AuditEntry
from core.boundary import MAX_TEXT_LENGTH
from partners.models import ApiKey, IdempotencyRecord
from partners.services import api_key_create
from payments.models import WebhookEvent
from storefront.attribution import COOKIE as ATTRIBUTION_COOKIE
from storefront.models import Customer, Order, OrderStatus, Product
from tests import gateway_helpers as gw
from tests.factories import ProductFactory, TaxRateFactory
from tests.payments.helpers import event as webhook_event
from tests.payments.helpers import signed

HOST = "t1.localhost"


@pytest.fixture
def course(tenant):
    TaxRateFactory(country="DE", rate="19.000")
    return ProductFactory(slug="course", name="Photo course", price_amount=4900)


def _start(client):
    return client.post(
        "/checkout/course/start",
        {"email": "buyer@example.com", "country": "DE", "region": "", "save_card": "on"},
    )


# --- item 1: the campaign link, the attribution cookie, order tokens -----------------------


@pytest.mark.gateway
def test_a_nul_in_a_campaign_link_is_dropped_and_checkout_still_starts(course, stripe_api_base):
    client = Client(HTTP_HOST=HOST)
    page = client.get("/p/course/?utm_source=x%00y&utm_medium=email")
    assert page.status_code == 200
    started = _start(client)
    assert started.status_code == 200, started.content
    order = Order.objects.get(token=started.json()["order"])
    # The bad value is dropped; the good one beside it is kept.
    assert order.utm_source == "" and order.utm_medium == "email"


@pytest.mark.gateway
def test_an_attribution_cookie_signed_with_a_nul_earlier_is_dropped_not_a_500(
    course, stripe_api_base
):
    client = Client(HTTP_HOST=HOST)
    poisoned = {
        "visitor_id": "abc",
        "source": "x\x00y",
        "medium": "",
        "campaign": "",
        "referrer": "",
    }
    client.cookies[ATTRIBUTION_COOKIE] = signing.dumps(poisoned, salt=ATTRIBUTION_COOKIE)
    started = _start(client)
    assert started.status_code == 200, started.content
    order = Order.objects.get(token=started.json()["order"])
    assert "\x00" not in order.utm_source and order.visitor_id != "abc"
    # The next page view replaces the cookie with a clean one.
    page = client.get("/p/course/")
    fresh = signing.loads(page.cookies[ATTRIBUTION_COOKIE].value, salt=ATTRIBUTION_COOKIE)
    assert "\x00" not in json.dumps(fresh) and fresh["visitor_id"] != "abc"


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/o/a%00b/thanks"),
        ("get", "/o/a%00b/offer"),
        ("get", "/o/a%00b/offer/status"),
        ("get", "/o/a%00b/next"),
        ("post", "/o/a%00b/pay"),
        ("post", "/o/a%00b/confirm"),
        ("post", "/o/a%00b/offer/accept"),
        ("post", "/o/a%00b/offer/decline"),
        ("post", "/o/a%00b/offer/confirm"),
        ("post", "/o/a%00b/offer/abandon"),
        ("get", "/f/a%00b"),
        ("get", "/u/a%00b"),
    ],
)
def test_a_nul_in_an_order_token_is_a_readable_400_not_a_500(tenant, method, path):
    client = Client(HTTP_HOST=HOST, raise_request_exception=False)
    response = getattr(client, method)(path)
    assert response.status_code == 400, response.status_code
    body = response.content.decode()
    assert "not allowed" in body and "Traceback" not in body


def test_a_refused_json_endpoint_answers_json_with_the_reason(course):
    client = Client(HTTP_HOST=HOST)
    response = client.post("/o/a%00b/pay", HTTP_ACCEPT="application/json")
    assert response.status_code == 400
    assert "NUL" in response.json()["error"]


# --- forms, query strings, cookies, headers ------------------------------------------------


@pytest.mark.gateway
@pytest.mark.parametrize("field", ["email", "region", "country", "bump", "csrfmiddlewaretoken"])
def test_a_nul_in_any_checkout_form_field_is_refused_and_nothing_is_written(
    course, stripe_api_base, field
):
    client = Client(HTTP_HOST=HOST)
    data = {"email": "buyer@example.com", "country": "DE", "region": "", "save_card": "on"}
    data[field] = "x\x00y"
    response = client.post("/checkout/course/start", data)
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert Order.objects.count() == 0 and Customer.objects.count() == 0
    assert Event.objects.count() == 0 and gw.payment_intents() == []


def test_an_over_long_query_value_is_refused(course):
    client = Client(HTTP_HOST=HOST)
    response = client.get(
        "/checkout/course/quote", {"country": "DE", "region": "A" * (MAX_TEXT_LENGTH + 1)}
    )
    assert response.status_code == 400 and "longer" in response.json()["error"]


def test_a_nul_in_a_query_parameter_the_store_reads_is_refused(course):
    client = Client(HTTP_HOST=HOST)
    response = client.get("/checkout/course/?email=a%00@example.com")
    assert response.status_code == 400
    assert "email" in response.content.decode()


def test_a_session_cookie_with_a_nul_is_dropped_not_a_500(course):
    client = Client(HTTP_HOST=HOST)
    client.cookies["sessionid"] = "abcdefgh\x00ijkl"
    assert client.get("/p/course/").status_code == 200
    admin = client.get("/admin/")
    assert admin.status_code == 302  # anonymous: sent to log in


def test_a_nul_in_a_header_is_refused_and_a_bad_referer_is_dropped(course):
    client = Client(HTTP_HOST=HOST)
    assert client.get("/p/course/", HTTP_X_SOMETHING="a\x00b").status_code == 400
    page = client.get("/p/course/", HTTP_REFERER="https://ex\x00ample.com/")
    assert page.status_code == 200
    attribution = signing.loads(page.cookies[ATTRIBUTION_COOKIE].value, salt=ATTRIBUTION_COOKIE)
    assert attribution["referrer"] == ""


def test_a_form_body_sent_with_put_or_a_bad_content_type_is_checked_too(course):
    client = Client(HTTP_HOST=HOST)
    put = client.put(
        "/checkout/course/start",
        data="email=a%00b",
        content_type="application/x-www-form-urlencoded",
    )
    assert put.status_code == 400 and "email" in put.json()["fields"]
    typed = client.post(
        "/checkout/course/start",
        data="email=x",
        content_type="application/x-www-form-urlencoded; x=\x00",
    )
    assert typed.status_code == 400 and "Content-Type" in typed.json()["error"]
    assert Order.objects.count() == 0


def test_a_nul_in_an_admin_form_or_login_is_a_readable_400_and_saves_nothing(course):
    client = Client(HTTP_HOST=HOST)
    login = client.post("/admin/login/", {"username": "own\x00er", "password": "x"})
    assert login.status_code == 400 and "username" in login.content.decode()
    assert client.login(username="owner", password="owner-pass-123")
    added = client.post(
        "/admin/storefront/product/add/",
        {"slug": "nul-product", "name": "Bad\x00name", "price_amount": "100", "currency": "USD"},
    )
    assert added.status_code == 400 and "name" in added.content.decode()
    assert not Product.objects.filter(slug="nul-product").exists()
    assert not AuditEntry.objects.exists()


def test_a_nul_in_an_address_on_the_platform_domain_is_a_400(tenant):
    response = Client(HTTP_HOST="localhost").get("/webhooks/stripe/t1%00/")
    assert response.status_code == 400


# --- JSON bodies: the partner API and the gateway webhook ---------------------------------


@pytest.fixture
def write_client(tenant):
    token = api_key_create(name="partner", scope=ApiKey.Scope.WRITE).token
    return Client(HTTP_HOST=HOST, HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.mark.parametrize(
    "raw, reason",
    [
        ('"Course \\u0000 one"', "NUL"),
        ('"Course \\ud800 one"', "surrogate"),
        (json.dumps("x" * (MAX_TEXT_LENGTH + 1)), "longer"),
    ],
)
def test_bad_text_in_an_api_json_body_is_a_400_json_error_and_nothing_is_written(
    write_client, raw, reason
):
    body = f'{{"slug": "new-course", "name": {raw}, "price_amount": 1000, "currency": "EUR"}}'
    before = (Product.objects.count(), IdempotencyRecord.objects.count())
    response = write_client.post(
        "/api/v1/products/", data=body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_input" and reason in error["fields"]["name"][0]
    assert (Product.objects.count(), IdempotencyRecord.objects.count()) == before


def test_a_nul_in_a_json_key_or_nested_value_is_refused(write_client):
    response = write_client.post(
        "/api/v1/products/",
        data='{"a\\u0000": 1, "b": [{"c": "\\u0000"}]}',
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="k2",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"


def test_a_json_body_sent_as_another_content_type_is_checked_too(write_client):
    # A view that parses the body itself (the webhook) must not be a way around the check.
    response = write_client.post(
        "/api/v1/products/",
        data='{"name": "\\u0000"}',
        content_type="text/plain",
        HTTP_IDEMPOTENCY_KEY="k3",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"


def test_a_nul_in_an_api_query_parameter_is_a_json_400(write_client):
    response = write_client.get("/api/v1/products/?search=a%00b")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"


@pytest.mark.parametrize("bad", ["evt_\x00", "evt_\ud800"])
def test_a_signed_webhook_with_bad_text_is_refused_and_not_stored(tenant, bad):
    evt = webhook_event("evt_ok", "payment_intent.succeeded", "payment_intent", "pi_1")
    evt["id"] = bad
    body, header = signed(evt)
    assert b"\\u" in body  # json.dumps escapes both: this is what a sender's JSON would hold
    response = Client(HTTP_HOST=HOST).post(
        "/webhooks/stripe/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=header,
    )
    assert response.status_code == 400 and response.json()["error"]
    assert WebhookEvent.objects.count() == 0


# --- item 3: the order page after a failed payment -----------------------------------------


def _thanks(client, order):
    response = client.get(f"/o/{order.token}/thanks")
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.gateway
@pytest.mark.parametrize("card", [gw.CARD_DECLINE_AT_CHARGE, gw.CARD_DECLINE_AT_SETUP])
def test_the_order_page_after_a_decline_says_the_payment_failed_and_offers_a_retry(
    course, stripe_api_base, card
):
    client = Client(HTTP_HOST=HOST)
    body = _start(client).json()
    order = Order.objects.get(token=body["order"])
    gw.confirm_card_setup(order.setup_ref, card)
    client.post(body["pay_url"], {"setup_intent": order.setup_ref})
    order.refresh_from_db()
    assert order.status == OrderStatus.FAILED
    page = _thanks(client, order)
    assert "being confirmed" not in page and "waiting" not in page
    assert "was not taken" in page and 'href="/checkout/course/"' in page


@pytest.mark.gateway
def test_the_order_page_after_a_failed_3ds_check_says_the_payment_failed(course, stripe_api_base):
    client = Client(HTTP_HOST=HOST)
    body = _start(client).json()
    order = Order.objects.get(token=body["order"])
    gw.confirm_card_setup(order.setup_ref, gw.CARD_3DS)
    from tests.upsell.helpers import finish_setup

    finish_setup(order.setup_ref)
    paid = client.post(body["pay_url"], {"setup_intent": order.setup_ref}).json()
    assert paid["status"] == "requires_action", paid
    gw.authenticate(gw.payment_intents()[0].id, paid["client_secret"], success=False)
    confirmed = client.post(body["confirm_url"])
    assert confirmed.json()["status"] == "declined"
    order.refresh_from_db()
    assert order.status == OrderStatus.FAILED
    page = _thanks(client, order)
    assert "waiting" not in page and "was not taken" in page
    assert 'href="/checkout/course/"' in page


@pytest.mark.gateway
def test_the_order_page_of_a_checkout_never_paid_says_nothing_was_charged(course, stripe_api_base):
    client = Client(HTTP_HOST=HOST)
    order = Order.objects.get(token=_start(client).json()["order"])
    page = _thanks(client, order)
    assert "waiting" not in page and "not been paid" in page
    assert 'href="/checkout/course/"' in page


@pytest.mark.gateway
def test_the_order_page_of_a_payment_still_processing_says_it_is_being_confirmed(
    course, stripe_api_base
):
    from payments.gateway import get_gateway, use_gateway
    from tests.upsell.helpers import PendingPrimaryGateway

    use_gateway(PendingPrimaryGateway(get_gateway()))
    try:
        _pay_slowly(course)
    finally:
        use_gateway(None)


def _pay_slowly(course):
    client = Client(HTTP_HOST=HOST)
    body = _start(client).json()
    order = Order.objects.get(token=body["order"])
    gw.confirm_card_setup(order.setup_ref)
    assert client.post(body["pay_url"], {"setup_intent": order.setup_ref}).status_code == 202
    page = _thanks(client, order)
    assert "being confirmed" in page and "was not taken" not in page


@pytest.mark.parametrize(
    ("host", "path"),
    [
        (HOST, "/webhooks/stripe/"),
        ("localhost", "/webhooks/stripe/t1/"),
        ("localhost", "/webhooks/stripe-connect/"),
        ("localhost", "/webhooks/mail/"),
    ],
)
def test_a_multipart_form_posted_to_a_webhook_is_a_400_with_the_reason(tenant, host, path):
    # The boundary reads a multipart body to check its fields, which leaves the webhook no
    # raw body to verify: it was a 500 (RawPostDataException) before raw_body_view.
    response = Client(HTTP_HOST=host).post(path, {"items": ["a", "b"], "type": "x"})
    assert response.status_code == 400
    assert response.json() == {"error": "send a JSON body, not a multipart form"}
    connection.set_tenant(tenant)
    assert not WebhookEvent.objects.exists()
