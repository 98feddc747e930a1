"""Hosted post-purchase pages: the one-click offer, accept/decline posts, the 3-D Secure step."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from core.boundary import json_endpoint
from core.ratelimit import rate_limit
from core.security import payment_page
from storefront.models import StoreSettings
from storefront.services import upsell
from storefront.services.upsell import OfferRefused
from storefront.views import _order_or_404


def _refused(request, exc: OfferRefused, token: str):
    return render(
        request,
        "storefront/upsell_refused.html",
        {
            "title": exc.title,
            "message": exc.message,
            "order_token": token,
        },
        status=exc.status,
    )


def _post_only(request, token: str):
    # A GET never charges: it gets a readable page, not a bare 405.
    return _refused(
        request,
        OfferRefused(
            405,
            "Use the button on the offer page",
            "Offers are added only with the button on the offer page. Nothing was charged.",
        ),
        token,
    )


@payment_page
@require_GET
def upsell_offer(request, token: str):
    order = _order_or_404(token)
    step = upsell.offer_step(order=order, schema=connection.schema_name)
    thanks = reverse("order-thanks", args=[token])
    if step.stage == "charged" or (step.stage == "closed" and not step.message):
        return HttpResponseRedirect(thanks)
    decision = step.decision
    return render(
        request,
        "storefront/upsell.html",
        {
            "creator": request.tenant,
            "order": order,
            "step": step,
            "decision": decision,
            "offer": decision.offer if decision else None,
            "thanks_url": thanks,
            "primary_settled": order.status == "paid",
            "stripe_js_url": settings.STRIPE_JS_URL,
            "stripe_publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
            "store": StoreSettings.current(),
        },
    )


@json_endpoint
@require_GET
def upsell_status(request, token: str):
    """What the waiting page polls: read-only, never charges."""
    order = _order_or_404(token)
    step = upsell.offer_step(order=order, schema=connection.schema_name, present=False)
    return JsonResponse({"stage": step.stage, "message": step.message})


# Every one-click post shares one budget per address and per order.
_limit_posts = rate_limit(
    "upsell_post", per_address="30/m", per_order="60/m", order_from="token", methods=["POST"]
)


def _decide(request, token: str, decide) -> HttpResponse:
    """Accept or decline: POST only, signed single-use token, then back to the offer page."""
    if request.method != "POST":
        return _post_only(request, token)
    try:
        decide(
            order_token=token, signed=request.POST.get("token", ""), schema=connection.schema_name
        )
    except OfferRefused as exc:
        return _refused(request, exc, token)
    return HttpResponseRedirect(reverse("upsell-offer", args=[token]), status=303)


@_limit_posts
@require_http_methods(["GET", "POST"])
def upsell_accept(request, token: str):
    return _decide(request, token, upsell.offer_accept)


@_limit_posts
@require_http_methods(["GET", "POST"])
def upsell_decline(request, token: str):
    return _decide(request, token, upsell.offer_decline)


@json_endpoint
@_limit_posts
@require_http_methods(["GET", "POST"])
def upsell_confirm(request, token: str):
    """After confirmCardPayment in the page: re-read the payment and answer with the stage."""
    if request.method != "POST":
        return _post_only(request, token)
    try:
        upsell.offer_confirm(order_token=token)
    except OfferRefused as exc:
        return JsonResponse({"stage": "error", "error": exc.message}, status=exc.status)
    order = _order_or_404(token)
    step = upsell.offer_step(order=order, schema=connection.schema_name, present=False)
    return JsonResponse(
        {
            "stage": step.stage,
            "message": step.message,
            "next": reverse("upsell-offer", args=[token]),
        }
    )


@_limit_posts
@require_http_methods(["GET", "POST"])
def upsell_abandon(request, token: str):
    """ "Not now" on the confirmation step: the offer goes to the follow-up email."""
    if request.method != "POST":
        return _post_only(request, token)
    try:
        upsell.offer_abandon_confirmation(order_token=token)
    except OfferRefused as exc:
        return _refused(request, exc, token)
    return HttpResponseRedirect(reverse("upsell-offer", args=[token]), status=303)
