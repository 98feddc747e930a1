"""Sign-up pages on the platform's domain, and the hand-off and checklist on a store's domain.

Thin views: `tenants.signup` does the work; `tenants.selectors` reads the checklist.
"""

from __future__ import annotations

import logging

from django.contrib.auth import get_user_model, login
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from core.ratelimit import Limit, Rate, client_address, ratelimit_hit, too_many_requests
from tenants import signup
from tenants.forms import SignupForm

logger = logging.getLogger(__name__)

SIGNUP_ADDRESS_RATE = Rate(10, 3600)  # sign-up POSTs per client address per hour
SIGNUP_EMAIL_RATE = Rate(3, 3600)  # per email address: no mail-bombing an owner either


def _platform_url(request) -> str:
    return f"{request.scheme}://{request.get_host()}"


def _store_url(request, creator) -> str:
    port = request.get_port()
    default = "443" if request.is_secure() else "80"
    suffix = f":{port}" if port and port != default else ""
    return f"{request.scheme}://{signup.store_host(creator.slug)}{suffix}"


def _form_page(request, form, *, error: str = "", field_errors=None, status: int = 200):
    return render(
        request,
        "tenants/signup.html",
        {
            "form": form,
            "stamp": signup.signup_stamp(),
            "error": error,
            "field_errors": field_errors or {},
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
def signup_page(request):
    if request.method == "GET":
        return _form_page(request, SignupForm())
    form = SignupForm(request.POST)
    email_identity = (request.POST.get("email") or "").strip().lower()[:254]
    decision = ratelimit_hit(
        scope="signup",
        limits=[
            Limit("address", client_address(request), SIGNUP_ADDRESS_RATE),
            Limit("account", email_identity, SIGNUP_EMAIL_RATE),
        ],
    )
    if not decision.allowed:
        return too_many_requests(
            request,
            decision,
            f"Too many sign-up attempts. Try again in {decision.retry_after} seconds.",
        )
    if not form.is_valid():
        errors = {f: " ".join(str(e) for e in errs) for f, errs in form.errors.items()}
        return _form_page(
            request, form, error="Check the fields marked below.", field_errors=errors, status=400
        )
    data = form.cleaned_data
    if data["website"]:  # the honeypot: answer as if all went well, make nothing
        logger.info("signup: honeypot filled from %s", client_address(request))
        return render(request, "tenants/signup_sent.html", {"email": data["email"]})
    stamp_error = signup.signup_stamp_error(data["stamp"])
    if stamp_error:
        return _form_page(request, form, error=stamp_error, status=400)
    try:
        result = signup.signup_submit(
            email=data["email"],
            password=data["password"],
            store_name=data["store_name"],
            subdomain=data["subdomain"],
            platform_url=_platform_url(request),
        )
    except signup.SignupError as exc:
        return _form_page(
            request,
            form,
            error="Check the fields marked below.",
            field_errors=exc.errors,
            status=400,
        )
    return render(request, "tenants/signup_sent.html", {"email": result.email})


@require_http_methods(["GET", "POST"])
def signup_verify(request, token: str):
    """GET shows a button; its POST verifies (mail scanners that fetch links change nothing)."""
    if request.method == "GET":
        try:
            creator = signup.signup_verify_read(token=token)
        except signup.SignupError as exc:
            return render(
                request, "tenants/signup_verify.html", {"error": exc.errors["token"]}, status=400
            )
        return render(
            request,
            "tenants/signup_verify.html",
            {
                "creator": creator,
                "verified": creator.email_verified_at is not None,
                "store_url": _store_url(request, creator),
            },
        )
    try:
        creator, handoff = signup.signup_verify(token=token)
    except signup.SignupError as exc:
        return render(
            request, "tenants/signup_verify.html", {"error": exc.errors["token"]}, status=400
        )
    if handoff is None:
        return render(
            request,
            "tenants/signup_verify.html",
            {
                "creator": creator,
                "verified": True,
                "store_url": _store_url(request, creator),
            },
        )
    url = _store_url(request, creator) + reverse(
        "store-welcome", args=[handoff], urlconf="config.urls_tenant"
    )
    # Not a redirect: CSP's form-action 'self' blocks a POST redirected to another origin.
    return render(
        request,
        "core/continue.html",
        {
            "title": "Taking you to your store…",
            "url": url,
            "link_text": "Continue to your store",
        },
    )


# --- on the store's own domain ---------------------------------------------------------------


@require_GET
def store_welcome(request, token: str):
    """Spend a hand-off token from the platform's domain: log the owner in, show the checklist."""
    try:
        signup.handoff_consume(token=token, creator=request.tenant)
    except signup.HandoffRefused as exc:
        return render(
            request,
            "storefront/error.html",
            {
                "title": "This sign-in link does not work",
                "message": f"{exc} Sign in at /admin/ with the username owner and your password.",
            },
            status=403,
        )
    owner = get_user_model().objects.filter(username="owner", is_active=True).first()
    if owner is None:
        return render(
            request,
            "storefront/error.html",
            {
                "title": "No owner account",
                "message": "This store has no owner account.",
            },
            status=403,
        )
    login(request, owner, backend="django.contrib.auth.backends.ModelBackend")
    return HttpResponseRedirect(reverse("store-getting-started"))
