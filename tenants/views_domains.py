"""Custom domains: the store admin's "Domains" page, and the TLS "ask" endpoint on the platform.

Thin views: `tenants.domains` does the work.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse, HttpResponseNotFound, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_tenants.utils import get_public_schema_name, schema_context

from core.identity import domain_key
from core.permissions import staff_permission_required
from tenants import domains
from tenants.dns import default_resolver
from tenants.models import Creator, CustomDomain
from tenants.services import HOST_RE


def _creator(request) -> Creator:
    return Creator.objects.get(pk=request.tenant.pk)  # a fresh row, not the routing cache's


@staff_permission_required("storefront.change_storesettings")
@require_http_methods(["GET", "POST"])
def domains_page(request):
    """List the store's custom domains with their state and DNS records; add one."""
    creator = _creator(request)
    error, entered, status = "", "", 200
    if request.method == "POST":
        entered = request.POST.get("domain", "")
        try:
            with schema_context(get_public_schema_name()):
                added = domains.custom_domain_add(creator=creator, domain=entered)
        except domains.CustomDomainError as exc:
            error, status = str(exc), 400
        else:
            messages.success(request, f"{added.domain} added: create the records below.")
            return HttpResponseRedirect(reverse("store-domains"))
    rows = [
        {"row": row, "records": domains.custom_domain_records(row)}
        for row in CustomDomain.objects.filter(creator=creator).order_by("domain")
    ]
    return render(
        request,
        "tenants/domains.html",
        {"rows": rows, "error": error, "entered": entered, "creator": creator},
        status=status,
    )


def _own_row(request, pk: int) -> CustomDomain | None:
    return CustomDomain.objects.filter(pk=pk, creator_id=request.tenant.pk).first()


@staff_permission_required("storefront.change_storesettings")
@require_POST
def domain_check(request, pk: int):
    """ "Check now": ask DNS once instead of waiting for the periodic check."""
    row = _own_row(request, pk)
    if row is None:
        return HttpResponseNotFound("No such domain in this store.")
    with schema_context(get_public_schema_name()):
        ok = domains.custom_domain_verify(custom_domain=row, resolver=default_resolver())
    if ok:
        messages.success(request, f"{row.domain} is verified and now serves your store.")
    else:
        messages.warning(request, f"{row.domain} is not verified yet: {row.last_error}")
    return HttpResponseRedirect(reverse("store-domains"))


@staff_permission_required("storefront.change_storesettings")
@require_POST
def domain_remove(request, pk: int):
    with schema_context(get_public_schema_name()):
        removed = domains.custom_domain_remove(creator=_creator(request), custom_domain_id=pk)
    if not removed:
        return HttpResponseNotFound("No such domain in this store.")
    messages.success(request, "The domain was removed and no longer serves your store.")
    return HttpResponseRedirect(reverse("store-domains"))


@require_GET
def tls_ask(request):
    """Caddy's `on_demand_tls { ask … }`: 200 if we serve `?domain=` (a store's host or a
    verified custom domain), else 404, so certificates are issued only for our hosts."""
    from tenants.routing import routing_cache

    raw = request.GET.get("domain", "")
    host = domain_key(raw) if "\x00" not in raw and len(raw) <= 253 else ""
    if not host or not HOST_RE.fullmatch(host):
        return HttpResponseNotFound("unknown domain\n", content_type="text/plain")
    if routing_cache.resolve(host) is None:
        return HttpResponseNotFound("unknown domain\n", content_type="text/plain")
    return HttpResponse("ok\n", content_type="text/plain")
