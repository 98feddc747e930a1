"""URLs served on a creator's domain, inside that creator's schema."""
from django.contrib import admin
from django.urls import include, path

from analytics import views as analytics_views
from payments import urls as payments_urls

urlpatterns = [
    # Before the admin include so the admin catch-all does not swallow it; staff only.
    path("admin/analytics/dashboard/", analytics_views.dashboard, name="analytics-dashboard"),
    path("admin/analytics/metrics/", analytics_views.glossary, name="analytics-glossary"),
    path("admin/", admin.site.urls),
    path("", include(payments_urls.tenant_urlpatterns)),
    path("api/v1/", include("config.api_urls")),
    path("", include("storefront.urls")),
]
