"""The store admin's getting-started checklist (on the store's own domain, after sign-up)."""

from __future__ import annotations

import datetime as dt

from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from core.permissions import staff_permission_required
from payments.fees import store_fee
from payments.selectors import money_days
from storefront.onboarding import onboarding_checklist
from tenants import signup

MONEY_DAYS = 14  # the money table on the page: the last two weeks


@staff_permission_required("storefront.change_storesettings")
@require_GET
def getting_started(request):
    items = onboarding_checklist(creator=request.tenant)
    fee = store_fee(request.tenant)
    today = dt.datetime.now(dt.UTC).date()
    return render(
        request,
        "tenants/getting_started.html",
        {
            "fee_percent": f"{fee.bps / 100:g}",
            "fee_fixed": f"{fee.fixed / 100:.2f}",
            "items": items,
            "money_days": money_days(since=today - dt.timedelta(days=MONEY_DAYS - 1)),
            "money_days_count": MONEY_DAYS,
            "done": sum(i.done for i in items),
            "total": len(items),
            "creator": request.tenant,
            "title": "Get your store ready",
            "site_header": "Store admin",
            "has_permission": True,
        },
    )


@staff_permission_required("storefront.change_storesettings")
@require_POST
def store_preview(request):
    signup.store_preview_mark(creator=request.tenant)
    return HttpResponseRedirect("/")
