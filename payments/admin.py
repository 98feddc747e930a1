"""Charges, the ledger, refunds and reconciliation findings: read only for the creator."""
from django.contrib import admin

from payments.models import ChargeAttempt, LedgerEntry, Mismatch, Refund, WebhookEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ChargeAttempt)
class ChargeAttemptAdmin(ReadOnlyAdmin):
    list_display = ["purpose", "amount", "currency", "status", "off_session", "created_at"]
    list_filter = ["status", "off_session"]
    search_fields = ["purpose", "reference", "gateway_ref"]
    exclude = ["client_secret"]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ["kind", "reference", "line_key", "amount", "currency", "gateway_ref",
                    "created_at"]
    list_filter = ["kind", "currency"]
    search_fields = ["reference", "gateway_ref"]


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = ["reference", "line_key", "amount", "currency", "status", "requested_by",
                    "created_at"]
    list_filter = ["status"]
    search_fields = ["reference", "gateway_ref"]


@admin.register(Mismatch)
class MismatchAdmin(ReadOnlyAdmin):
    list_display = ["kind", "gateway_ref", "reference", "found_at", "resolved_at"]
    list_filter = ["kind"]


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ["event_type", "event_id", "received_at", "processed_at", "deliveries"]
    list_filter = ["event_type"]
