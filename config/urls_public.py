"""URLs served on the platform's own (public-schema) domain: landing page and platform admin."""
from django.contrib import admin
from django.urls import path

from core import views as core_views

urlpatterns = [
    path("", core_views.platform_landing, name="platform-landing"),
    path("admin/", admin.site.urls),
]
