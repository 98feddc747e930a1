"""URLs served on a creator's domain, inside that creator's schema."""
from django.contrib import admin
from django.urls import include, path

from payments import urls as payments_urls

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include(payments_urls.tenant_urlpatterns)),
    path("api/v1/", include("storefront.api.urls")),
    path("", include("storefront.urls")),
]
