"""The creator's admin for API keys and webhooks: secrets are shown once, then never again.
Creating and revoking keys and every subscription change are audited (secrets masked)."""
from django.contrib import admin, messages

from audit.admin import AuditedAdminMixin
from partners import services
from partners.models import ApiKey, WebhookDelivery, WebhookSubscription


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "prefix", "scope", "rate_per_minute", "created_at", "last_used_at",
                    "revoked_at"]
    list_filter = ["scope", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    fields = ["name", "scope", "rate_per_minute", "prefix", "created_by", "created_at",
              "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        if not change:
            token = services.api_key_issue_for(key=obj)
            obj.created_by = request.user.get_username()
            super().save_model(request, obj, form, change)
            messages.warning(request, f"Your new API key (copy it now, it is shown only once): "
                                      f"{token}")
            return
        super().save_model(request, obj, form, change)

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
            super().save_model(request, obj, form, change)
            messages.warning(request, f"Signing secret for {obj.url} (shown only once): "
                                      f"{obj.secret}")
            return
        super().save_model(request, obj, form, change)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["event_name", "subscription", "status", "attempts", "last_status_code",
                    "next_attempt_at", "delivered_at", "created_at"]
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
