"""A tenant URLconf for the security tests: the real tenant URLs plus small probe views.

No checkout, upsell or unsubscribe endpoint exists yet, so the limiter, the payment-page CSP
and the audited admin are exercised through these stand-ins, wired exactly as those views
will be.
"""

from django.contrib import admin
from django.http import HttpResponse
from django.template import engines
from django.urls import path

from audit.admin import AuditedAdminMixin
from config import urls_tenant
from core.ratelimit import rate_limit
from core.security import payment_page
from storefront.models import Product

PAGE = """<!doctype html><html><head>
<script src="{{ stripe_js_url }}"></script>
<script nonce="{{ csp_nonce }}">window.ready = true;</script>
</head><body>nonce={{ csp_nonce }}</body></html>"""


def _page(request):
    from django.conf import settings

    html = (
        engines["django"]
        .from_string(PAGE)
        .render({"stripe_js_url": settings.STRIPE_JS_URL}, request)
    )
    return HttpResponse(html)


@payment_page
def pay(request):
    return _page(request)


def plain(request):
    return _page(request)


@rate_limit("checkout", per_address="3/m", per_order="2/m", order_from="order_id")
def limited(request, order_id):
    return HttpResponse(f"ok {order_id}")


@rate_limit("unsubscribe", per_address="2/m", methods=["POST"])
def unsubscribe(request):
    return HttpResponse("unsubscribed")


audited_site = admin.AdminSite(name="audited")


@admin.action(description="Activate")
def activate(modeladmin, request, queryset):
    queryset.update(status=Product.Status.ACTIVE)


class ProductAdmin(AuditedAdminMixin, admin.ModelAdmin):
    fields = ("slug", "name", "price_amount", "currency", "status")
    actions = [activate]


audited_site.register(Product, ProductAdmin)

urlpatterns = [
    path("_sec/pay/", pay),
    path("_sec/plain/", plain),
    path("_sec/limited/<str:order_id>/", limited),
    path("_sec/unsubscribe/", unsubscribe),
    path("_sec/audited-admin/", audited_site.urls),
    *urls_tenant.urlpatterns,
]
