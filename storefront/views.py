"""Hosted pages on the creator's domain: parse input, call one service, render."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.boundary import json_endpoint
from core.cpu_slots import cpu_light
from core.ratelimit import client_ip, rate_limit
from core.security import payment_page
from offers.coupons import CouponRefused
from offers.experiments import buyer_key
from payments.connect import payments_block_reason
from payments.models import AttemptStatus, ChargeAttempt
from storefront import page_cache, selectors
from storefront.attribution import attribution_capture, attribution_read, page_view_note
from storefront.forms import CheckoutForm, QuoteForm
from storefront.models import Order, StoreSettings
from storefront.pricing import Jurisdiction, bump_within_guardrail, quote_checkout
from storefront.services import checkout as checkout_service
from storefront.services.followups import recovery
from storefront.services.subscribe import trial_terms
from storefront.tax.providers import TableTaxProvider, tax_provider


@require_GET
def store_index(request):
    response = render(
        request,
        "storefront/index.html",
        {
            "products": selectors.product_list_active(),
            "creator": request.tenant,
            "store": StoreSettings.current(),
            "payments_blocked": payments_block_reason(),
        },
    )
    page_view_note(request, attribution_capture(request, response))
    _coupon_remember(request, response)
    return response


@cpu_light
@require_GET
def product_detail(request, slug: str):
    # Drawn once per change of what it shows (storefront.page_cache), not per request.
    page = page_cache.page_get("product", slug)
    if page is None:
        since = page_cache.generation()
        product = selectors.product_get_active(slug=slug)
        if product is None:
            raise Http404("This product is not available.")
        drawn = render(
            request,
            "storefront/product.html",
            {
                "product": product,
                "creator": request.tenant,
                "store": StoreSettings.current(),
                "payments_blocked": payments_block_reason(),
            },
        )
        page = page_cache.page_from_response(request, drawn, product_id=product.pk)
        page_cache.page_store("product", slug, page=page, since=since)
    response = page.response(request)
    page_view_note(request, attribution_capture(request, response), product_id=page.product_id)
    _coupon_remember(request, response)
    return response


COUPON_COOKIE = "sf_coupon"


def _coupon_code(request, data=None) -> str:
    """The code in the checkout's coupon field when the form was sent (empty: none), else a
    ?coupon= link's, else the one a link on another store page left."""
    if data is not None:
        return (data.get("coupon") or "").strip()[:40]
    code = (request.GET.get("coupon") or request.COOKIES.get(COUPON_COOKIE) or "").strip()
    return code[:40]


def _coupon_remember(request, response) -> None:
    """A ?coupon= link on any store page carries its code to the checkout (a plain cookie: it
    holds nothing the buyer could not type; the checkout checks it like a typed code)."""
    code = (request.GET.get("coupon") or "").strip()[:40]
    if code:
        response.set_cookie(
            COUPON_COOKIE, code, max_age=7 * 24 * 3600, httponly=True, samesite="Lax"
        )


def _quote_payload(quote) -> dict:
    coupon = quote.coupon
    return {
        "coupon": coupon.code if coupon else "",
        "coupon_label": f"Discount ({coupon.code}, {coupon.describe})" if coupon else "",
        "discount": quote.discount.amount,
        "discount_display": f"−{quote.discount}" if coupon else "",
        "currency": quote.currency,
        "lines": [
            {
                "kind": line.kind,
                "description": line.description,
                "net": line.net.amount,
                "tax": line.tax.amount,
                "total": line.total.amount,
                "total_display": str(line.total),
            }
            for line in quote.lines
        ],
        "net": quote.net.amount,
        "tax": quote.tax.amount,
        "tax_display": str(quote.tax),
        "tax_name": quote.tax_name,
        "total": quote.total.amount,
        "total_display": str(quote.total),
        "trial_terms": trial_terms(quote=quote),
    }


def _visitor_key(request, attribution: dict | None = None) -> str:
    attribution = attribution if attribution is not None else attribution_read(request) or {}
    return buyer_key(visitor_id=attribution.get("visitor_id", ""))


def _checkout_context(
    request,
    product,
    form,
    *,
    add_bump: bool,
    error: str = "",
    visitor_key: str = "",
    coupon_code: str = "",
    place: Jurisdiction | None = None,
):
    """`place`: the buyer's location to price for before one is posted (the admin's preview
    names a sample buyer's); a posted country and region win over it."""
    shown = checkout_service.bump_shown(product=product, visitor_key=visitor_key)
    bump = shown.offer  # the buyer's experiment arm of it; None in the no-offer control
    data = form.data if form.is_bound else {}
    country = data.get("country") or (place.country if place else "US")
    region = data.get("region") or (place.region if place else "")
    field_errors: dict[str, str] = {}
    try:
        jurisdiction = checkout_service.jurisdiction_parse(country=country, region=region)
    except checkout_service.CheckoutError as exc:
        jurisdiction = Jurisdiction("US")
        if form.is_bound:  # a no-JavaScript "Update total" with a bad place: say so at the field
            field_errors[exc.field] = exc.message
    try:
        coupon = checkout_service.coupon_for_checkout(code=coupon_code, product=product)
    except checkout_service.CheckoutError as exc:
        coupon, field_errors["coupon"] = None, exc.message
    if not bump_within_guardrail(product=product, bump=bump, coupon=coupon):
        bump = None  # too dear next to the discounted cart: not offered with this coupon
    store = StoreSettings.current()
    try:
        quote = quote_checkout(
            product=product,
            bump=bump if add_bump else None,
            jurisdiction=jurisdiction,
            store=store,
            coupon=coupon,
        )
    except CouponRefused as exc:
        field_errors["coupon"] = exc.message
        quote = quote_checkout(
            product=product, bump=bump if add_bump else None, jurisdiction=jurisdiction, store=store
        )
    return {
        "creator": request.tenant,
        "product": product,
        "bump": bump,
        "bump_variant": shown.variant,
        "form": form,
        "quote": quote,
        "add_bump": add_bump,
        "store": store,
        "stripe_js_url": settings.STRIPE_JS_URL,
        "stripe_publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
        "consent_text": checkout_service.CONSENT_TEXT,
        # A free trial with nothing to pay today: what happens instead (and no "Pay 0").
        "trial_terms": trial_terms(quote=quote),
        "reminder_text": checkout_service.REMINDER_TEXT,
        "coupon_value": coupon_code,
        "remind_checked": data.get("remind") in ("on", "true", "1"),
        "recovery_value": data.get("recovery", "") if form.is_bound else "",
        "field_errors": field_errors,
        "region_value": region if field_errors.get("region") else jurisdiction.region,
        "error": error
        or (
            f"Check the field marked below: {next(iter(field_errors.values()))}"
            if field_errors
            else ""
        ),
    }


# What a checkout link may carry that changes the page drawn (the rest, such as utm_*, does not).
_CHECKOUT_PAGE_PARAMS = frozenset(
    ("email", "country", "region", "remind", "recovery", "bump", "coupon")
)


def _checkout_page_shared(request) -> bool:
    """Whether this checkout page is the same for every buyer (but its CSRF token): a plain
    GET, no prefill or coupon, and taxes from the store's own rate table."""
    return (
        request.method == "GET"
        and not _CHECKOUT_PAGE_PARAMS.intersection(request.GET.keys())
        and not request.COOKIES.get(COUPON_COOKIE)
        and type(tax_provider()) is TableTaxProvider
    )


@cpu_light
@payment_page
@require_http_methods(["GET", "POST"])
def checkout_page(request, slug: str):
    """The checkout form. A POST here (without JavaScript) recomputes totals for the bump."""
    shared = _checkout_page_shared(request)
    page = page_cache.page_get("checkout", slug) if shared else None
    if page is not None:  # drawn once per change (storefront.page_cache)
        response = page.response(request)
        if attribution_read(request) is None:
            attribution_capture(request, response)
        return response
    since = page_cache.generation()
    coupon_code = _coupon_code(request, request.POST if request.method == "POST" else None)
    product = selectors.product_get_active(slug=slug, coupon_code=coupon_code)
    if product is None:
        raise Http404("This product is not available.")
    blocked = payments_block_reason()
    if blocked:  # before any gateway call: no checkout form for a store that cannot sell
        return render(
            request,
            "storefront/error.html",
            {
                "title": "Not accepting payments yet",
                "message": f"{blocked} Please come back soon.",
            },
        )
    if request.method == "POST":
        form = CheckoutForm(request.POST)
        add_bump = request.POST.get("add_bump") in ("on", "true", "1")
    else:
        # A follow-up or reminder email links here with the buyer's details: prefill, never
        # trust (the reminder's signed token is checked again when the checkout starts).
        prefill = {
            "email": request.GET.get("email", "")[:254],
            "country": request.GET.get("country", "US")[:2].upper(),
            "region": request.GET.get("region", "")[:10],
            "remind": request.GET.get("remind", ""),
            "recovery": request.GET.get("recovery", "")[:400],
        }
        form = (
            CheckoutForm(data=prefill)
            if prefill["email"]
            else CheckoutForm(initial={"country": "US"})
        )
        add_bump = request.GET.get("bump") == "1"
    # The visitor id decides the experiment arm, so a first visit gets its cookie made
    # before the page is drawn (and set on the page's response).
    attribution, cookie_holder = attribution_read(request), None
    if attribution is None:
        cookie_holder = HttpResponse()
        attribution = attribution_capture(request, cookie_holder)
    context = _checkout_context(
        request,
        product,
        form,
        add_bump=add_bump,
        visitor_key=_visitor_key(request, attribution),
        coupon_code=coupon_code,
    )
    if shared:
        drawn = render(
            request,
            "storefront/checkout.html",
            {**context, "csrf_token": page_cache.CSRF_PLACEHOLDER},
        )
        page = page_cache.page_from_response(request, drawn, product_id=product.pk)
        if not context["bump_variant"]:  # an experiment's arm is this visitor's own
            page_cache.page_store("checkout", slug, page=page, since=since)
        response = page.response(request)
    else:
        response = render(request, "storefront/checkout.html", context)
    if cookie_holder is not None:
        response.cookies.update(cookie_holder.cookies)
    _coupon_remember(request, response)
    return response


@json_endpoint
@require_GET
def checkout_quote(request, slug: str):
    form = QuoteForm(request.GET)
    if not form.is_valid():
        return JsonResponse({"error": "Choose a valid country.", "fields": form.errors}, status=400)
    bump_id = form.cleaned_data["bump"] if form.cleaned_data["add_bump"] else None
    try:
        _, _, quote = checkout_service.checkout_quote(
            product_slug=slug,
            bump_offer_id=bump_id,
            country=form.cleaned_data["country"],
            region=form.cleaned_data["region"],
            visitor_key=_visitor_key(request),
            coupon_code=form.cleaned_data["coupon"],
        )
    except checkout_service.CheckoutError as exc:
        return JsonResponse({"error": exc.message, "field": exc.field}, status=400)
    return JsonResponse(_quote_payload(quote))


def _form_errors(form) -> dict[str, str]:
    return {field: " ".join(str(e) for e in errors) for field, errors in form.errors.items()}


@json_endpoint
@rate_limit("checkout_start", per_address="30/m")
@require_POST
def checkout_start(request, slug: str):
    form = CheckoutForm(request.POST)
    if not form.is_valid():
        errors = _form_errors(form)
        return JsonResponse({"error": next(iter(errors.values())), "fields": errors}, status=400)
    try:
        started = checkout_service.checkout_start(
            product_slug=slug,
            bump_offer_id=form.bump_offer_id(),
            email=form.cleaned_data["email"],
            country=form.cleaned_data["country"],
            region=form.cleaned_data["region"],
            save_card=form.cleaned_data["save_card"],
            attribution=checkout_service.Attribution.from_mapping(attribution_read(request)),
            expected_total=form.cleaned_data["expected_total"],
            vat_id=form.cleaned_data["vat_id"],
            client_ip=client_ip(request),
            coupon_code=form.cleaned_data["coupon"],
            remind=form.cleaned_data["remind"],
            recovered_from_id=recovery.recovery_order_id(
                signed=form.cleaned_data["recovery"], schema=connection.schema_name
            ),
        )
    except checkout_service.CheckoutError as exc:
        return JsonResponse({"error": exc.message, "fields": {exc.field: exc.message}}, status=400)
    token = started.order.token
    return JsonResponse(
        {
            "order": token,
            "setup_client_secret": started.setup_client_secret,
            "pay_url": reverse("checkout-pay", args=[token]),
            "confirm_url": reverse("checkout-confirm", args=[token]),
            "quote": _quote_payload(started.quote),
        }
    )


def _attempt_payload(order_token: str, attempt: ChargeAttempt | None) -> tuple[dict, int]:
    # Paid or still processing, the buyer goes straight to the post-purchase page: it presents
    # the offer, waits for settlement, or sends them on to thanks when there is none (what
    # order_next decides too, one request and one eligibility check fewer for every buyer).
    after = reverse("upsell-offer", args=[order_token])
    if attempt is None or attempt.status == AttemptStatus.SUCCEEDED:
        # None: a free trial started with nothing to pay today (checkout_pay).
        return {"status": "paid", "next": after}, 200
    if attempt.status == AttemptStatus.REQUIRES_ACTION:
        return {"status": "requires_action", "client_secret": attempt.client_secret}, 200
    if attempt.status in (AttemptStatus.IN_FLIGHT, AttemptStatus.PROCESSING, AttemptStatus.CREATED):
        return {"status": "processing", "next": after}, 202
    return {
        "status": "declined",
        "error": "Your card was declined. Please check the details or use another card.",
    }, 402


@json_endpoint
@rate_limit("checkout_pay", per_address="30/m", per_order="10/m", order_from="token")
@require_POST
def checkout_pay(request, token: str):
    try:
        attempt = checkout_service.checkout_pay(
            order_token=token,
            setup_ref=request.POST.get("setup_intent", ""),
            confirm_country=request.POST.get("confirm_country", ""),
        )
    except checkout_service.CountryToConfirm as exc:
        # Nothing is charged: the page asks the buyer and pays again with confirm_country.
        return JsonResponse(
            {
                "status": "confirm_country",
                "error": exc.message,
                "country": exc.declared,
                "other_country": exc.other,
            },
            status=409,
        )
    except checkout_service.CheckoutError as exc:
        return JsonResponse({"status": "error", "error": exc.message}, status=400)
    body, status = _attempt_payload(token, attempt)
    return JsonResponse(body, status=status)


@json_endpoint
@rate_limit("checkout_pay", per_address="30/m", per_order="10/m", order_from="token")
@require_POST
def checkout_confirm(request, token: str):
    try:
        attempt = checkout_service.checkout_confirm(order_token=token)
    except checkout_service.CheckoutError as exc:
        return JsonResponse({"status": "error", "error": exc.message}, status=400)
    body, status = _attempt_payload(token, attempt)
    return JsonResponse(body, status=status)


def _order_or_404(token: str) -> Order:
    order = selectors.order_with_customer(token=token)
    if order is None:
        raise Http404("No such order.")
    return order


@require_GET
def order_next(request, token: str):
    """Where the buyer goes after paying: the one-click offer if there is one, else thanks.
    Pay's answer now names the offer page itself; this stays for pages loaded before that."""
    from storefront.services import upsell

    order = _order_or_404(token)
    url = upsell.next_step_url(order=order)
    return HttpResponseRedirect(url or reverse("order-thanks", args=[token]))
