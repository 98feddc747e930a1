"""The event log, read only (rows are append-only)."""
from django.contrib import admin

from analytics.models import Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["name", "occurred_at", "order_id", "offer_id", "source", "amount", "currency"]
    list_filter = ["name", "source", "occurred_at"]
    search_fields = ["order_id", "visitor_id", "source", "campaign"]
    date_hierarchy = "occurred_at"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Event._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
