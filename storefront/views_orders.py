"""The buyer's side after paying: the order page (thank-you page), protected downloads,
invoice and credit-note PDFs, and the magic-link list of a buyer's purchases."""

from __future__ import annotations

import mimetypes
import os
from urllib.parse import quote

from django.conf import settings
from django.db import connection
from django.http import FileResponse, Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_http_methods

from core.ratelimit import rate_limit
from storefront import selectors
from storefront.forms import PurchasesLinkForm
from storefront.invoice_pdf import document_pdf
from storefront.models import CreditNote, Invoice, Order, OrderLine, StoreSettings
from storefront.privacy.services import privacy_link_token
from storefront.services import buyer_links, delivery
from storefront.services.delivery import LineState
from storefront.services.subscribe import line_access_allowed


def _order_or_404(token: str) -> Order:
    order = Order.objects.select_related("customer").filter(token=token).first()
    if order is None:
        raise Http404("No such order.")
    return order


def _no_store(response: HttpResponse) -> HttpResponse:
    # Pages and files behind capability links: never kept by a shared cache or the browser.
    response["Cache-Control"] = "private, no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response


def _order_page(request, token: str, *, thanks: bool):
    order = _order_or_404(token)
    lines = list(order.lines.select_related("product"))
    schema = connection.schema_name
    state = selectors.order_payment_state(order=order)
    paid = state == selectors.PaymentState.PAID
    core = next((line.product for line in lines if line.kind == "core"), None)
    retry_url = (
        reverse("checkout", args=[core.slug])
        if core is not None and core.status == core.Status.ACTIVE
        else ""
    )
    states = delivery.line_states(order=order, lines=lines) if paid else {}
    # Access rows matter only for a limit or a license key: most pages skip the query.
    counted = any(
        line.product.download_limit is not None or line.product.license_keys for line in lines
    )
    access = delivery.order_access_ensure(order=order, lines=lines) if paid and counted else {}
    downloads, keys, remaining = {}, {}, {}
    for line in lines:
        if states.get(line.pk) != LineState.ACTIVE or not line_access_allowed(line):
            continue
        product = line.product
        if product.deliverable_file or product.deliverable_url:
            downloads[line.pk] = reverse(
                "line-download", args=[delivery.download_token(line=line, schema=schema)]
            )
            if product.download_limit is not None:
                used = access[line.pk].downloads if line.pk in access else 0
                remaining[line.pk] = max(product.download_limit - used, 0)
        if line.pk in access and access[line.pk].license_key:
            keys[line.pk] = access[line.pk].license_key
    invoices = list(order.invoices.prefetch_related("credit_notes")) if paid else []
    privacy_url = (
        reverse("privacy-page", args=[privacy_link_token(order=order, schema=schema)])
        if paid
        else ""
    )
    response = render(
        request,
        "storefront/thanks.html",
        {
            "creator": request.tenant,
            "privacy_url": privacy_url,
            "order": order,
            "lines": lines,
            "paid": paid,
            "thanks": thanks,
            "state": state,
            "retry_url": retry_url,
            "downloads": downloads,
            "line_states": states,
            "license_keys": keys,
            "downloads_left": remaining,
            "invoices": invoices,
            "total": sum(line.total_amount for line in lines),
            "tax": sum(line.tax_amount for line in lines),
            "discount": sum(line.discount_amount for line in lines),
            "store": StoreSettings.current(),
            "separate_charges": sum(1 for line in lines if line.kind not in ("core", "bump")),
        },
    )
    return _no_store(response)


@require_GET
def order_thanks(request, token: str):
    return _order_page(request, token, thanks=True)


@require_GET
def order_page(request, token: str):
    """The order page the receipt and the purchases list link to."""
    return _order_page(request, token, thanks=False)


def _refused(request, title: str, message: str, status: int, link: str = ""):
    return _no_store(
        render(
            request,
            "storefront/error.html",
            {"title": title, "message": message, "link": link},
            status=status,
        )
    )


def _is_resume(request) -> bool:
    """A ranged request that does not start at the first byte continues a download."""
    ranges = request.headers.get("Range", "")
    return bool(ranges) and not ranges.replace(" ", "").startswith("bytes=0-")


def _file_response(line: OrderLine) -> HttpResponse:
    field = line.product.deliverable_file
    storage, name = field.storage, field.name
    # Named after the product, not the stored name (which may carry a de-duplicating suffix).
    extension = os.path.splitext(name)[1]
    filename = f"{line.product.slug}{extension}"
    content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    header = settings.DELIVERY_ACCEL_HEADER
    if header:
        # The proxy sends the bytes; Django only decided that it may.
        response = HttpResponse(content_type=content_type)
        if header.lower() == "x-sendfile":
            response[header] = storage.path(name)
        else:
            prefix = settings.DELIVERY_ACCEL_PREFIX.rstrip("/")
            response[header] = f"{prefix}/{quote(connection.schema_name)}/{quote(name)}"
    else:
        response = FileResponse(storage.open(name, "rb"), content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["X-Content-Type-Options"] = "nosniff"
    return _no_store(response)


@require_GET
def line_download(request, signed: str):
    """A signed, short-lived link to one line's file: served only while the line is paid, not
    refunded and not charged back, and within the product's download limit."""
    check = delivery.download_check(token=signed, schema=connection.schema_name)
    line = (
        OrderLine.objects.select_related("product", "order").filter(pk=check.line_id).first()
        if check.line_id
        else None
    )
    if line is None:
        return _refused(
            request,
            "This download link is not valid",
            "The link is not valid for this store. Open your order page for a fresh one.",
            403,
        )
    order_url = reverse("order-page", args=[line.order.token])
    if check.expired:
        return _refused(
            request,
            "This download link has expired",
            "Download links work for a few minutes. Your order page has a fresh one.",
            403,
            order_url,
        )
    state = delivery.line_state(line=line)
    if state in (LineState.REFUNDED, LineState.DISPUTED):
        why = "refunded" if state == LineState.REFUNDED else "disputed with the bank"
        return _refused(
            request,
            "This download has ended",
            f"This purchase was {why}, so its download is no longer available.",
            410,
            order_url,
        )
    if state != LineState.ACTIVE:
        return _refused(
            request,
            "This download link is not valid",
            "This order is not paid. Open your order page to see where it stands.",
            403,
            order_url,
        )
    if not line_access_allowed(line):
        return _refused(
            request,
            "This subscription has ended",
            "Access to this content stopped when the subscription was cancelled, refunded or "
            "left unpaid. Open your subscriptions from your latest receipt to restart it.",
            403,
            order_url,
        )
    product = line.product
    has_file = bool(product.deliverable_file) and product.deliverable_file.storage.exists(
        product.deliverable_file.name
    )
    if not has_file and not product.deliverable_url:
        raise Http404("Nothing to download for this product.")
    if not _is_resume(request) and not delivery.download_count(line=line):
        return _refused(
            request,
            "Download limit reached",
            f"This purchase allows {product.download_limit} downloads, and all were used. "
            "Write to the store if you need another.",
            403,
            order_url,
        )
    if has_file:
        return _file_response(line)
    return _no_store(HttpResponseRedirect(product.deliverable_url))


def _document_response(document, filename: str) -> HttpResponse:
    response = HttpResponse(document_pdf(document), content_type="application/pdf")
    response["Content-Disposition"] = content_disposition_header(False, filename)
    return _no_store(response)


@require_GET
def invoice_pdf(request, token: str, number: int):
    invoice = Invoice.objects.filter(order__token=token, number=number).first()
    if invoice is None:
        raise Http404("No such invoice.")
    return _document_response(invoice, f"{invoice.display_number}.pdf")


@require_GET
def credit_note_pdf(request, token: str, number: int):
    note = (
        CreditNote.objects.select_related("invoice")
        .filter(invoice__order__token=token, number=number)
        .first()
    )
    if note is None:
        raise Http404("No such credit note.")
    return _document_response(note, f"{note.display_number}.pdf")


@rate_limit(
    "purchases_link",
    per_address="10/m",
    per_account="3/h",
    account_from=lambda request, *a, **k: (request.POST.get("email") or "").strip().lower() or None,
    methods=["POST"],
)
@require_http_methods(["GET", "POST"])
def purchases_request(request):
    """Email in; the same answer whether or not the address bought anything here."""
    form = PurchasesLinkForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        buyer_links.purchases_link_request(email=form.cleaned_data["email"])
        return _no_store(
            render(
                request,
                "storefront/purchases_sent.html",
                {"creator": request.tenant, "email": form.cleaned_data["email"]},
            )
        )
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "storefront/purchases_request.html",
        {"creator": request.tenant, "form": form},
        status=status,
    )


@require_GET
def purchases_list(request, signed: str):
    email, expired = buyer_links.purchases_check(token=signed, schema=connection.schema_name)
    if email is None:
        return _refused(
            request,
            "This link has expired" if expired else "This link is not valid",
            "Ask for a new link to your purchases; it arrives by email.",
            403,
            reverse("purchases-request"),
        )
    orders = buyer_links.purchases_list(email=email)
    return _no_store(
        render(
            request,
            "storefront/purchases.html",
            {"creator": request.tenant, "email": email, "orders": orders},
        )
    )
