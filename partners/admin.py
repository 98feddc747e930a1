"""The creator's admin for API keys and webhooks: secrets are shown once, then never again.
Creating and revoking keys and every subscription change are audited (secrets masked).

A new key or signing secret is shown on the response page of the form that created it, never
in a message: Django's messages travel in a cookie, readable by anyone who sees it."""

from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import reverse

from audit.admin import AuditedAdminMixin
from partners import services
from partners.models import ApiKey, WebhookDelivery, WebhookSubscription


def _secret_page(admin_obj, request, obj, *, secret: str, intro: str, label: str):
    opts = admin_obj.model._meta
    changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    response = TemplateResponse(
        request,
        "admin/partners/secret_shown_once.html",
        {
            **admin_obj.admin_site.each_context(request),
            "opts": opts,
            "object": obj,
            "title": label,
            "intro": intro,
            "label": label,
            "secret": secret,
            "changelist_url": changelist,
            "next_url": changelist,
        },
    )
    response["Cache-Control"] = "no-store"  # not kept by the browser or a proxy
    return response


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = [
        "name",
        "prefix",
        "scope",
        "rate_per_minute",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["scope", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    fields = [
        "name",
        "scope",
        "rate_per_minute",
        "prefix",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    readonly_fields = ["prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        if not change:
            request._issued_api_key = services.api_key_issue_for(key=obj)
            obj.created_by = request.user.get_username()
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        token = getattr(request, "_issued_api_key", None)
        if token is None:
            return super().response_add(request, obj, post_url_continue)
        return _secret_page(
            self,
            request,
            obj,
            secret=token,
            label="Your new API key",
            intro=f"The API key {obj} was created.",
        )

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the key's history stays

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        count = sum(services.api_key_revoke(key=key) for key in queryset)
        self.message_user(request, f"Revoked {count} key(s).")


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["url", "event_types", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["url", "description"]
    fields = ["url", "event_types", "is_active", "description"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.secret = services.webhook_secret_new()
            request._issued_webhook_secret = obj.secret
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        secret = getattr(request, "_issued_webhook_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        return _secret_page(
            self,
            request,
            obj,
            secret=secret,
            label="Signing secret",
            intro=f"The subscription to {obj.url} was created; deliveries are "
            "signed with this secret.",
        )


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = [
        "event_name",
        "subscription",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "delivered_at",
        "created_at",
    ]
    list_filter = ["status", "event_name"]
    search_fields = ["event_id", "subscription__url"]
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    actions = ["redeliver"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Redeliver selected deliveries")
    def redeliver(self, request, queryset):
        for delivery in queryset:
            services.webhook_redeliver(delivery=delivery)
        self.message_user(request, f"Queued {queryset.count()} delivery(ies) again.")
