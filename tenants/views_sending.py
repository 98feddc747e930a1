"""The store admin's "Email sender" page: the store's own sending domain, its DNS records
(SPF and DKIM) and their state. Thin views: `tenants.sending` does the work. The From name and
the Reply-To address are the store's settings (storefront.StoreSettings)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponseNotFound, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST
from django_tenants.utils import get_public_schema_name, schema_context

from core.permissions import staff_permission_required
from tenants import sending
from tenants.dns import default_resolver
from tenants.models import Creator, SendingDomain


def _creator(request) -> Creator:
    return Creator.objects.get(pk=request.tenant.pk)


@staff_permission_required("storefront.change_storesettings")
@require_http_methods(["GET", "POST"])
def sending_page(request):
    creator = _creator(request)
    error, entered, status = "", {}, 200
    if request.method == "POST":
        entered = {
            "domain": request.POST.get("domain", ""),
            "local_part": request.POST.get("local_part", "store"),
        }
        try:
            with schema_context(get_public_schema_name()):
                row = sending.sending_domain_add(creator=creator, **entered)
        except sending.SendingDomainError as exc:
            error, status = str(exc), 400
        else:
            messages.success(request, f"{row.domain} added: create the two records below.")
            return HttpResponseRedirect(reverse("store-sending"))
    with schema_context(get_public_schema_name()):
        row = SendingDomain.objects.filter(creator=creator).first()
        records = sending.sending_domain_records(row) if row else []
        sender = sending.sender_for(creator_id=creator.pk)
    return render(
        request,
        "tenants/sending.html",
        {
            "creator": creator,
            "row": row,
            "records": records,
            "sender": sender,
            "platform_address": settings.DEFAULT_FROM_EMAIL,
            "error": error,
            "entered": entered,
        },
        status=status,
    )


def _own_row(request, pk: int) -> SendingDomain | None:
    with schema_context(get_public_schema_name()):
        return SendingDomain.objects.filter(pk=pk, creator_id=request.tenant.pk).first()


@staff_permission_required("storefront.change_storesettings")
@require_POST
def sending_check(request, pk: int):
    row = _own_row(request, pk)
    if row is None:
        return HttpResponseNotFound("No such sending domain in this store.")
    with schema_context(get_public_schema_name()):
        ok = sending.sending_domain_verify(row=row, resolver=default_resolver())
    if ok:
        messages.success(request, f"{row.domain} is verified: your emails now come from it.")
    else:
        messages.warning(request, f"{row.domain} is not verified yet: {row.last_error}")
    return HttpResponseRedirect(reverse("store-sending"))


@staff_permission_required("storefront.change_storesettings")
@require_POST
def sending_remove(request, pk: int):
    with schema_context(get_public_schema_name()):
        removed = sending.sending_domain_remove(creator=_creator(request), row_id=pk)
    if not removed:
        return HttpResponseNotFound("No such sending domain in this store.")
    messages.success(request, "Removed: your emails come from the platform's address again.")
    return HttpResponseRedirect(reverse("store-sending"))
