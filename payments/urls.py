"""Webhook routes: `tenant_urlpatterns` on a creator's domain, `public_urlpatterns` on the
platform's own domain (which names the creator in the path)."""

from django.urls import path

from payments import views

tenant_urlpatterns = [
    path("webhooks/stripe/", views.stripe_webhook, name="stripe-webhook"),
]
public_urlpatterns = [
    path(
        "webhooks/stripe/<slug:slug>/",
        views.stripe_webhook_for_creator,
        name="stripe-webhook-for-creator",
    ),
]
