"""URLs served on a creator's domain, inside that creator's schema."""

from django.contrib import admin
from django.urls import include, path

from analytics import views as analytics_views
from payments import urls as payments_urls
from payments import views_connect
from storefront import views_brand, views_onboarding, views_team
from tenants import views as tenants_views
from tenants import views_domains, views_sending

urlpatterns = [
    # Before the admin include so the admin catch-all does not swallow it; staff only.
    path("admin/analytics/dashboard/", analytics_views.dashboard, name="analytics-dashboard"),
    path("admin/analytics/metrics/", analytics_views.glossary, name="analytics-glossary"),
    # Onboarding (tenants.signup): the login hand-off from the platform and the checklist.
    path("admin/welcome/<str:token>/", tenants_views.store_welcome, name="store-welcome"),
    path("admin/getting-started/", views_onboarding.getting_started, name="store-getting-started"),
    path("admin/getting-started/preview/", views_onboarding.store_preview, name="store-preview"),
    path("admin/payouts/connect/", views_connect.payouts_connect, name="store-payouts-connect"),
    path("admin/payouts/refresh/", views_connect.payouts_refresh, name="store-payouts-refresh"),
    path("admin/payouts/return/", views_connect.payouts_return, name="store-payouts-return"),
    path("admin/brand/", views_brand.brand_page, name="store-brand"),
    path("admin/brand/preview/<str:page>/", views_brand.brand_preview, name="store-brand-preview"),
    path("admin/domains/", views_domains.domains_page, name="store-domains"),
    path("admin/domains/<int:pk>/check/", views_domains.domain_check, name="store-domain-check"),
    path("admin/domains/<int:pk>/remove/", views_domains.domain_remove, name="store-domain-remove"),
    path("admin/email-sender/", views_sending.sending_page, name="store-sending"),
    path(
        "admin/email-sender/<int:pk>/check/",
        views_sending.sending_check,
        name="store-sending-check",
    ),
    path(
        "admin/email-sender/<int:pk>/remove/",
        views_sending.sending_remove,
        name="store-sending-remove",
    ),
    # The team (storefront/team.py): owners and managers only; the join link is public.
    path("admin/team/", views_team.team_page, name="store-team"),
    path("admin/team/<int:user_id>/role/", views_team.team_role, name="store-team-role"),
    path(
        "admin/team/invitations/<int:pk>/revoke/",
        views_team.team_invitation_revoke,
        name="store-team-revoke",
    ),
    path("admin/join/<str:token>/", views_team.team_join, name="store-team-join"),
    path("admin/", admin.site.urls),
    path("", include(payments_urls.tenant_urlpatterns)),
    path("api/v1/", include("config.api_urls")),
    path("", include("subscriptions.urls")),
    path("", include("storefront.urls")),
]
