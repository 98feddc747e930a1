"""URLs served on the platform's own (public-schema) domain: landing page and platform admin."""
from django.contrib import admin
from django.urls import include, path

from core import views as core_views
from payments import urls as payments_urls

urlpatterns = [
    path("", core_views.platform_landing, name="platform-landing"),
    path("admin/", admin.site.urls),
    path("", include(payments_urls.public_urlpatterns)),
]
