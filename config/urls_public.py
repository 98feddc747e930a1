"""URLs served on the platform's own (public-schema) domain: landing page and platform admin."""

from django.contrib import admin
from django.urls import include, path

from core import views as core_views
from payments import urls as payments_urls
from payments import views_connect
from tenants import views as tenants_views
from tenants import views_domains, views_mail

urlpatterns = [
    path("", core_views.platform_landing, name="platform-landing"),
    path("admin/", admin.site.urls),
    path("signup/", tenants_views.signup_page, name="signup"),
    path("signup/verify/<str:token>/", tenants_views.signup_verify, name="signup-verify"),
    # Caddy's on_demand_tls `ask` (no trailing slash: Caddy does not follow redirects).
    path("tls/ask", views_domains.tls_ask, name="tls-ask"),
    path("webhooks/stripe-connect/", views_connect.connect_webhook, name="stripe-connect-webhook"),
    path("webhooks/mail/", views_mail.mail_events_webhook, name="mail-events-webhook"),
    path("", include(payments_urls.public_urlpatterns)),
]
