"""The buyer's subscription pages, reached by the signed link in every receipt and email:
the list (cancel at period end, resume), the card update (a SetupIntent page) and the
on-session confirmation of a renewal that needs authentication."""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.db import connection
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.security import payment_page
from payments import services as payments
from payments.gateway import GatewayRejected, GatewayUnavailable
from payments.models import AttemptStatus, ChargeAttempt, GatewayCustomer
from subscriptions import notices, services
from subscriptions.models import PeriodStatus, Subscription, SubscriptionPeriod
from subscriptions.services import SubscriptionRefused

logger = logging.getLogger(__name__)


def _refused(request, title: str, message: str, status: int):
    return render(
        request, "storefront/error.html", {"title": title, "message": message}, status=status
    )


def _customer_or_none(token: str) -> int | None:
    return notices.manage_check(token=token, schema=connection.schema_name)


_BAD_LINK = (
    "This link is not valid",
    "The link has expired or is not for this store. Open the latest email from the store "
    "for a fresh one.",
    403,
)


def _subscription(token: str, pk: int) -> Subscription | None:
    customer_id = _customer_or_none(token)
    if customer_id is None:
        return None
    return (
        Subscription.objects.select_related("product")
        .filter(pk=pk, customer_id=customer_id)
        .first()
    )


@require_GET
def manage(request, token: str):
    customer_id = _customer_or_none(token)
    if customer_id is None:
        return _refused(request, *_BAD_LINK)
    subs = list(
        Subscription.objects.select_related("product")
        .filter(customer_id=customer_id)
        .order_by("-created_at")
    )
    return render(
        request,
        "subscriptions/manage.html",
        {"subs": subs, "token": token, "message": request.GET.get("done", "")},
    )


_DONE = {
    "cancel": "Your subscription will end at the end of the period you paid for.",
    "resume": "Your subscription continues.",
}


@require_POST
def change(request, token: str, pk: int, action: str):
    sub = _subscription(token, pk)
    if sub is None:
        return _refused(request, *_BAD_LINK)
    try:
        if action == "cancel":
            services.subscription_cancel_at_period_end(subscription_id=sub.pk, by="buyer")
        elif action == "resume":
            services.subscription_resume(subscription_id=sub.pk, by="buyer")
        else:
            return _refused(request, "Unknown action", "Nothing was changed.", 404)
    except SubscriptionRefused as exc:
        return _refused(request, "Nothing was changed", exc.message, exc.status)
    return HttpResponseRedirect(reverse("subscriptions-manage", args=[token]) + f"?done={action}")


def _gateway_customer(sub: Subscription) -> GatewayCustomer | None:
    return GatewayCustomer.objects.filter(gateway_ref=sub.customer_ref).first()


@payment_page
@require_http_methods(["GET", "POST"])
def card(request, token: str, pk: int):
    """GET: a card form saving a new card with confirmCardSetup. POST (setup_ref): attach it,
    make it the subscription's card and retry a failed renewal at once."""
    sub = _subscription(token, pk)
    customer = _gateway_customer(sub) if sub is not None else None
    if sub is None or customer is None:
        return _refused(request, *_BAD_LINK)
    if request.method == "GET":
        try:
            setup = payments.card_setup_create(
                customer=customer, idempotency_key=f"subcard_{sub.pk}_{uuid.uuid4().hex}"
            )
        except (GatewayUnavailable, GatewayRejected):
            return _refused(
                request,
                "Card updates are unavailable right now",
                "Please try again in a few minutes. Nothing was changed.",
                503,
            )
        return render(
            request,
            "subscriptions/card.html",
            {
                "sub": sub,
                "token": token,
                "client_secret": setup.client_secret,
                "setup_ref": setup.setup_ref,
                "stripe_js_url": settings.STRIPE_JS_URL,
                "stripe_publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
            },
        )
    setup_ref = request.POST.get("setup_ref", "")
    if not setup_ref.startswith("seti_") or len(setup_ref) > 100:
        return JsonResponse(
            {"error": "The card form did not finish. Please try again."}, status=400
        )
    try:
        setup = payments.card_setup_retrieve(setup_ref=setup_ref)
        if setup.status != "succeeded" or not setup.payment_method_ref:
            return JsonResponse(
                {"error": "The card was not saved. Please check it and try again."}, status=400
            )
        if setup.customer_ref not in (None, customer.gateway_ref):  # made for someone else
            return JsonResponse(
                {"error": "The card form did not finish. Please try again."}, status=400
            )
        payments.card_attach_from_setup(customer=customer, setup=setup)
    except GatewayRejected:
        return JsonResponse({"error": "The card was declined. Please use another."}, status=400)
    except GatewayUnavailable:
        return JsonResponse({"error": "Please try again in a few minutes."}, status=503)
    payments.vault_save(
        customer=customer,
        payment_method_ref=setup.payment_method_ref,
        consent_text="Saved to renew my subscription.",
    )
    attempt_id = services.subscription_card_update(
        subscription_id=sub.pk, payment_method_ref=setup.payment_method_ref
    )
    sub.refresh_from_db()
    status = ChargeAttempt.objects.get(pk=attempt_id).status if attempt_id else None
    return JsonResponse(
        {
            "status": sub.status,
            "retry": status,
            "message": "Your card was updated."
            + (" Your payment went through." if status == AttemptStatus.SUCCEEDED else "")
            + (
                " The payment with this card did not go through."
                if status == AttemptStatus.DECLINED
                else ""
            ),
        }
    )


@payment_page
@require_http_methods(["GET", "POST"])
def confirm(request, token: str, pk: int):
    """A renewal that needs authentication: GET shows the page that runs
    confirmCardPayment(secret); POST re-reads the payment and records it."""
    sub = _subscription(token, pk)
    if sub is None:
        return _refused(request, *_BAD_LINK)
    period = (
        SubscriptionPeriod.objects.filter(subscription=sub, status=PeriodStatus.ACTION)
        .order_by("-number")
        .first()
    )
    attempt = None
    if period is not None:
        from core import orderkeys

        attempt = ChargeAttempt.objects.filter(
            purpose=orderkeys.subscription_purpose(sub.pk, period.number, period.tries),
            status=AttemptStatus.REQUIRES_ACTION,
        ).first()
    if attempt is None:
        return _refused(
            request,
            "Nothing to confirm",
            "There is no payment waiting for your confirmation.",
            409,
        )
    if request.method == "POST":
        try:
            attempt = payments.attempt_refresh(attempt_id=attempt.pk)
        except (GatewayUnavailable, GatewayRejected):
            logger.warning("could not re-read %s; reconciliation will", attempt.pk)
        return JsonResponse({"status": attempt.status})
    return render(
        request,
        "subscriptions/confirm.html",
        {
            "sub": sub,
            "token": token,
            "client_secret": attempt.client_secret,
            "stripe_js_url": settings.STRIPE_JS_URL,
            "stripe_publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
        },
    )
