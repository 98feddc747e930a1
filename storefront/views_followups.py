"""Pages behind follow-up email links: the one-click offer, its accept, and unsubscribe."""

from __future__ import annotations

from django.db import connection
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from core.ratelimit import rate_limit
from storefront.models import StoreSettings
from storefront.services import followups
from storefront.services.followups import FollowUpRefused, recovery


def _refused(request, exc: FollowUpRefused):
    return render(
        request,
        "storefront/unsubscribe_refused.html",
        {"title": exc.title, "message": exc.message},
        status=exc.status,
    )


@require_http_methods(["GET"])
def followup_offer(request, signed: str):
    """The email's link: shows the offer; a GET never charges."""
    try:
        view = followups.followup_offer_view(signed=signed, schema=connection.schema_name)
    except FollowUpRefused as exc:
        return _refused(request, exc)
    return render(
        request,
        "storefront/followup_offer.html",
        {"creator": request.tenant, "o": view, "store": StoreSettings.current()},
    )


@rate_limit(
    "followup_accept", per_address="20/m", per_order="5/m", order_from="signed", methods=["POST"]
)
@require_http_methods(["POST"])
def followup_accept(request, signed: str):
    try:
        followups.followup_accept(signed=signed, schema=connection.schema_name)
    except FollowUpRefused as exc:
        return _refused(request, exc)
    return HttpResponseRedirect(reverse("followup-offer", args=[signed]), status=303)


# Mail clients POST here without a CSRF token (RFC 8058 one-click); the signed link is the
# authority, and unsubscribing is harmless to repeat.
@rate_limit("unsubscribe", per_address="30/m", per_order="10/m", order_from="signed")
@csrf_exempt
@require_http_methods(["GET", "POST"])
def followup_unsubscribe(request, signed: str):
    """One click (the email link's GET, or a mail client's POST): unsubscribed at once."""
    try:
        customer = followups.customer_unsubscribe(signed=signed, schema=connection.schema_name)
    except FollowUpRefused as exc:
        return _refused(request, exc)
    return render(
        request, "storefront/unsubscribe.html", {"creator": request.tenant, "email": customer.email}
    )


@rate_limit("recover", per_address="30/m")
@require_http_methods(["GET"])
def checkout_recover(request, signed: str):
    """A reminder's link: back to the checkout it came from, prefilled (a GET changes nothing)."""
    try:
        url = recovery.recovery_checkout_url(signed=signed, schema=connection.schema_name)
    except recovery.RecoveryRefused as exc:
        return _refused(request, exc)
    return HttpResponseRedirect(url)
