"""URLs served on a creator's domain, inside that creator's schema."""
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("storefront.api.urls")),
    path("", include("storefront.urls")),
]
