"""Security headers on every response: CSP with per-request nonces, and a payment-page widening.

Every page gets a strict Content-Security-Policy (our own origin only, no inline script
without the request's nonce, never framed). A view that hosts Stripe.js declares itself with
`@payment_page`; only then are Stripe's origins added to `script-src`, `frame-src` and
`connect-src`. The list of what those origins are is the inventory PCI DSS 6.4.3 asks for
(docs/security.md); keep the two in step.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse

# Stripe's documented origins for Stripe.js, Elements and 3-D Secure
# (https://docs.stripe.com/security/guide#content-security-policy), minus Google Maps,
# which only the Address Element's autocomplete needs and we do not use.
STRIPE_SCRIPT_ORIGINS = ("https://js.stripe.com", "https://*.js.stripe.com")
STRIPE_FRAME_ORIGINS = (
    "https://js.stripe.com",
    "https://*.js.stripe.com",
    "https://hooks.stripe.com",
)
STRIPE_CONNECT_ORIGINS = ("https://api.stripe.com",)

PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), usb=(), browsing-topics=(), payment=()"
)
# Payment pages may delegate the Payment Request API (Apple Pay / Google Pay) to Stripe's frame.
PAYMENT_PAGE_PERMISSIONS_POLICY = PERMISSIONS_POLICY.replace(
    "payment=()", 'payment=(self "https://js.stripe.com")'
)
REFERRER_POLICY = "strict-origin-when-cross-origin"

_PAYMENT_PAGE_ATTR = "csp_payment_page"


def _origin(url: str) -> str | None:
    parts = urlsplit(url or "")
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def stripe_origins() -> dict[str, tuple[str, ...]]:
    """Origins a payment page needs, per directive, derived from the Stripe.js URL setting.

    Against real Stripe these are Stripe's documented origins. Locally and in tests the fake
    Stripe.js is served by localstripe, so its origin (and the API base it talks to) is used.
    """
    js_origin = _origin(getattr(settings, "STRIPE_JS_URL", ""))
    if js_origin is None or js_origin == "https://js.stripe.com":
        return {
            "script-src": STRIPE_SCRIPT_ORIGINS,
            "frame-src": STRIPE_FRAME_ORIGINS,
            "connect-src": STRIPE_CONNECT_ORIGINS,
        }
    api_origin = _origin(getattr(settings, "STRIPE_API_BASE", "")) or js_origin
    local = tuple(dict.fromkeys((js_origin, api_origin)))
    return {"script-src": (js_origin,), "frame-src": local, "connect-src": local}


def content_security_policy(
    *, nonce: str, payment_page: bool, framed_by_self: bool = False, frames_self: bool = False
) -> str:
    directives: dict[str, list[str]] = {
        "default-src": ["'self'"],
        "script-src": ["'self'", f"'nonce-{nonce}'"],
        # Stylesheets from our own origin only (storefront/static/storefront/store.css): no
        # inline <style> or style="" anywhere. Scripts setting element.style are unaffected.
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "frame-src": ["'none'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    if framed_by_self:  # the store admin's preview frames (same origin only)
        directives["frame-ancestors"] = ["'self'"]
    if frames_self:  # the store admin's page that shows those frames
        directives["frame-src"] = ["'self'"]
    if payment_page:
        for directive, origins in stripe_origins().items():
            kept = [v for v in directives[directive] if v != "'none'"]
            directives[directive] = kept + [o for o in origins if o not in kept]
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def is_payment_page(request: HttpRequest, response: HttpResponse | None = None) -> bool:
    return bool(
        getattr(request, _PAYMENT_PAGE_ATTR, False)
        or (response is not None and getattr(response, _PAYMENT_PAGE_ATTR, False))
    )


def payment_page(view: Callable) -> Callable:
    """Mark a view as hosting Stripe.js: its responses' CSP allows Stripe's origins.

    For class-based views: `@method_decorator(payment_page, name="dispatch")`.
    """

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        setattr(request, _PAYMENT_PAGE_ATTR, True)
        response = view(request, *args, **kwargs)
        setattr(response, _PAYMENT_PAGE_ATTR, True)
        return response

    setattr(wrapped, _PAYMENT_PAGE_ATTR, True)
    return wrapped


_FRAMED_BY_SELF_ATTR = "csp_framed_by_self"
_FRAMES_SELF_ATTR = "csp_frames_self"


def framed_by_self(view: Callable) -> Callable:
    """A page the same origin may show in a frame (the admin's brand preview), never another."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        setattr(response, _FRAMED_BY_SELF_ATTR, True)
        return response

    return wrapped


def frames_self(view: Callable) -> Callable:
    """A page that shows same-origin frames (`frame-src 'self'`)."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        setattr(response, _FRAMES_SELF_ATTR, True)
        return response

    return wrapped


class SecurityHeadersMiddleware:
    """Adds CSP, nosniff, Referrer-Policy, Permissions-Policy and frame protection.

    It sits first in MIDDLEWARE so that responses short-circuited early (health probes,
    unknown hosts, 429s) carry the headers too. `request.csp_nonce` is set for templates
    that need an inline script: `<script nonce="{{ csp_nonce }}">`.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.csp_nonce = secrets.token_urlsafe(16)
        response = self.get_response(request)
        payment = is_payment_page(request, response)
        framed = getattr(response, _FRAMED_BY_SELF_ATTR, False)
        response.headers["Content-Security-Policy"] = content_security_policy(
            nonce=request.csp_nonce,
            payment_page=payment,
            framed_by_self=framed,
            frames_self=getattr(response, _FRAMES_SELF_ATTR, False),
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = REFERRER_POLICY
        response.headers["Permissions-Policy"] = (
            PAYMENT_PAGE_PERMISSIONS_POLICY if payment else PERMISSIONS_POLICY
        )
        response.headers["X-Frame-Options"] = "SAMEORIGIN" if framed else "DENY"
        return response


def csp_nonce(request: HttpRequest) -> dict[str, str]:
    """Template context processor: `{{ csp_nonce }}` for the rare inline script."""
    return {"csp_nonce": getattr(request, "csp_nonce", "")}
