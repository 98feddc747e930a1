"""The buyer's own data requests, behind the signed link on their order page (storefront.privacy).

The link names an order of this store; the address is the one that order was bought with, so
the buyer never types it and nobody can ask about someone else's. A GET only shows the choices;
the export and the erasure are POSTs (an erasure after an explicit confirmation).
"""

from __future__ import annotations

from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from core.ratelimit import rate_limit
from storefront.models import PrivacyRequestChannel, PrivacyRequestKind
from storefront.privacy import services as privacy


def _refused(request):
    return render(
        request,
        "storefront/unsubscribe_refused.html",
        {
            "title": "This link does not work",
            "message": "The link is broken, has expired, or its data was already erased. "
            "Open your order page again for a fresh link, or write to the store.",
        },
        status=404,
    )


@rate_limit("privacy_link", per_address="20/h", methods=["POST"])
@require_http_methods(["GET", "POST"])
def privacy_page(request, signed: str):
    order = privacy.privacy_link_order(token=signed, schema=connection.schema_name)
    if order is None:
        return _refused(request)
    context = {"creator": request.tenant, "signed": signed, "done": ""}
    if request.method == "POST":
        kind = request.POST.get("kind", "")
        if kind == PrivacyRequestKind.ERASURE and request.POST.get("confirm") != "yes":
            context["error"] = "Tick the box to confirm that your data should be erased."
            return render(request, "storefront/privacy.html", context, status=400)
        if kind not in PrivacyRequestKind.values:
            context["error"] = "Choose a copy of your data or its erasure."
            return render(request, "storefront/privacy.html", context, status=400)
        row = privacy.privacy_request_create(
            email=order.customer.email,
            kind=kind,
            channel=PrivacyRequestChannel.BUYER,
            requested_by="buyer",
            actor="storefront.privacy.buyer_link",
        )
        row = privacy.privacy_request_process(request_id=row.pk)
        if kind == PrivacyRequestKind.EXPORT:
            response = JsonResponse(row.result, json_dumps_params={"indent": 2})
            response["Content-Disposition"] = 'attachment; filename="my-data.json"'
            return response
        context["done"] = "erased"
    return render(request, "storefront/privacy.html", context)
