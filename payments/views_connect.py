"""Payouts onboarding in the store admin, and the platform's Connect webhook endpoint."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from core.boundary import raw_body_view
from core.permissions import staff_permission_required
from payments import connect
from payments.gateway import GatewayRejected, GatewayUnavailable

logger = logging.getLogger(__name__)


def _onboarding_redirect(request):
    try:
        url = connect.payout_account_connect(
            refresh_url=request.build_absolute_uri(reverse("store-payouts-refresh")),
            return_url=request.build_absolute_uri(reverse("store-payouts-return")),
        )
    except (GatewayUnavailable, GatewayRejected) as exc:
        logger.warning("connect: onboarding link for %s failed: %s", request.tenant.slug, exc)
        messages.error(request, "The payouts provider did not answer. Please try again shortly.")
        return HttpResponseRedirect(reverse("store-getting-started"))
    if request.method == "POST":
        # Not a redirect: CSP's form-action 'self' blocks a POST redirected to another origin.
        return render(
            request,
            "core/continue.html",
            {
                "title": "Taking you to set up payouts…",
                "url": url,
                "link_text": "Continue to payouts setup",
            },
        )
    return HttpResponseRedirect(url)


@staff_permission_required("payments.view_payoutaccount")
@require_POST
def payouts_connect(request):
    """ "Connect payouts" on the checklist: a fresh onboarding link on every click."""
    return _onboarding_redirect(request)


@staff_permission_required("payments.view_payoutaccount")
@require_GET
def payouts_refresh(request):
    """The gateway sends the creator here when a link expired or was used: make a new one."""
    return _onboarding_redirect(request)


@staff_permission_required("payments.view_payoutaccount")
@require_GET
def payouts_return(request):
    """Back from onboarding: re-read the account now rather than wait for the webhook."""
    try:
        connect.payout_account_sync()
    except (GatewayUnavailable, GatewayRejected) as exc:
        logger.warning("connect: sync for %s failed: %s", request.tenant.slug, exc)
    return HttpResponseRedirect(reverse("store-getting-started"))


@csrf_exempt  # the gateway signs the body; there is no session
@require_POST
@raw_body_view
def connect_webhook(request):
    """`account.updated` and other Connect events, for every store, on the platform's domain."""
    try:
        slug = connect.connect_event_receive(
            payload=request.body, signature=request.META.get("HTTP_STRIPE_SIGNATURE", "")
        )
    except connect.ConnectEventRejected as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    except (GatewayUnavailable, GatewayRejected) as exc:
        # Could not re-read the account: ask the gateway to deliver again later.
        return JsonResponse({"error": f"gateway unavailable: {exc}"}, status=503)
    return JsonResponse({"received": True, "store": slug is not None})
