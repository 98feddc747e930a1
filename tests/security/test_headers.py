"""Security headers on every page type, and Stripe's origins only on payment pages."""

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.test import Client

from storefront.models import Product

# (host, path) per page type that exists today.
PAGE_TYPES = {
    "store index": ("t1.localhost", "/"),
    "product page": ("t1.localhost", "/p/field-guide/"),
    "admin login": ("t1.localhost", "/admin/login/"),
    "platform landing": ("localhost", "/"),
    "platform admin login": ("localhost", "/admin/login/"),
    "healthz": ("10.0.0.1", "/healthz"),
    "unknown host 404": ("nobody.localhost", "/"),
}


@pytest.fixture
def product(tenant):
    return Product.objects.create(
        slug="field-guide", name="Field guide", price_amount=1900, status=Product.Status.ACTIVE
    )


def csp(response) -> dict[str, list[str]]:
    header = response.headers["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def stripe_origin() -> str:
    parts = urlsplit(settings.STRIPE_JS_URL)
    return f"{parts.scheme}://{parts.netloc}"


@pytest.fixture(params=list(PAGE_TYPES), ids=list(PAGE_TYPES))
def page(request, product):
    host, path = PAGE_TYPES[request.param]
    response = Client(HTTP_HOST=host).get(path)
    expected = 404 if request.param == "unknown host 404" else 200
    assert response.status_code == expected, (request.param, response.status_code)
    return response


def test_every_page_type_allows_scripts_only_from_self_and_its_nonce(page):
    policy = csp(page)
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"][0] == "'self'"
    assert re.fullmatch(r"'nonce-[A-Za-z0-9_-]{16,}'", policy["script-src"][1])
    assert len(policy["script-src"]) == 2  # nothing else: no 'unsafe-inline', no Stripe
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]  # no 'unsafe-inline': styles come from files


def test_no_page_type_has_an_inline_style_the_policy_would_block(page):
    if "text/html" not in page.headers.get("Content-Type", ""):
        return
    body = page.content.decode()
    assert "<style" not in body and " style=" not in body


def test_non_payment_pages_allow_no_stripe_origin_and_no_frames(page):
    header = page.headers["Content-Security-Policy"]
    assert "stripe" not in header and stripe_origin() not in header
    assert csp(page)["frame-src"] == ["'none'"]
    assert csp(page)["connect-src"] == ["'self'"]


def test_every_page_type_forbids_mime_sniffing(page):
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_every_page_type_sends_strict_origin_when_cross_origin(page):
    assert page.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


def test_every_page_type_refuses_to_be_framed(page):
    assert page.headers["X-Frame-Options"] == "DENY"
    assert csp(page)["frame-ancestors"] == ["'none'"]


def test_every_page_type_turns_off_powerful_browser_features(page):
    policy = page.headers["Permissions-Policy"]
    for feature in ("camera=()", "microphone=()", "geolocation=()", "payment=()"):
        assert feature in policy


class _Scripts(HTMLParser):
    def __init__(self):
        super().__init__()
        self.inline: list[dict] = []
        self._open: dict | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self._open = dict(attrs)

    def handle_data(self, data):
        if self._open is not None and data.strip() and "src" not in self._open:
            self.inline.append(self._open)

    def handle_endtag(self, tag):
        if tag == "script":
            self._open = None


def test_no_page_type_has_an_inline_script_without_the_nonce(page):
    if "text/html" not in page.headers.get("Content-Type", ""):
        return
    parser = _Scripts()
    parser.feed(page.content.decode())
    nonce = csp(page)["script-src"][1][len("'nonce-") : -1]
    assert all(attrs.get("nonce") == nonce for attrs in parser.inline)


def test_each_response_gets_a_fresh_nonce(product):
    client = Client(HTTP_HOST="t1.localhost")
    first = csp(client.get("/"))["script-src"][1]
    second = csp(client.get("/"))["script-src"][1]
    assert first != second


@pytest.mark.urls("tests.security.urls")
def test_the_nonce_in_templates_is_the_one_in_the_header(tenant):
    response = Client(HTTP_HOST="t1.localhost").get("/_sec/plain/")
    nonce = re.search(rb"nonce=([A-Za-z0-9_-]+)</body>", response.content).group(1).decode()
    assert f"'nonce-{nonce}'" in csp(response)["script-src"]
    assert f'<script nonce="{nonce}">'.encode() in response.content


@pytest.mark.urls("tests.security.urls")
def test_a_payment_page_allows_the_configured_stripe_js_origin(tenant):
    response = Client(HTTP_HOST="t1.localhost").get("/_sec/pay/")
    policy = csp(response)
    origin = stripe_origin()
    assert origin in policy["script-src"]
    assert origin in policy["frame-src"] and "'none'" not in policy["frame-src"]
    assert origin in policy["connect-src"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert 'payment=(self "https://js.stripe.com")' in response.headers["Permissions-Policy"]


@pytest.mark.urls("tests.security.urls")
def test_the_same_template_without_the_decorator_gets_no_stripe_origin(tenant):
    response = Client(HTTP_HOST="t1.localhost").get("/_sec/plain/")
    assert stripe_origin() not in response.headers["Content-Security-Policy"]


@pytest.mark.urls("tests.security.urls")
def test_a_payment_page_against_real_stripe_allows_exactly_stripes_documented_origins(
    tenant, settings
):
    settings.STRIPE_JS_URL = "https://js.stripe.com/v3/"
    settings.STRIPE_API_BASE = ""
    policy = csp(Client(HTTP_HOST="t1.localhost").get("/_sec/pay/"))
    assert policy["script-src"][2:] == ["https://js.stripe.com", "https://*.js.stripe.com"]
    assert policy["frame-src"] == [
        "https://js.stripe.com",
        "https://*.js.stripe.com",
        "https://hooks.stripe.com",
    ]
    assert policy["connect-src"] == ["'self'", "https://api.stripe.com"]
