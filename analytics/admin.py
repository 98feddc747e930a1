"""The event log, read only (rows are append-only)."""

from django.contrib import admin

from analytics.models import Event
from core.admin_readonly import ReadOnlyAdmin


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["name", "occurred_at", "order_id", "offer_id", "source", "amount", "currency"]
    list_filter = ["name", "source", "occurred_at"]
    search_fields = ["order_id", "visitor_id", "source", "campaign"]
    date_hierarchy = "occurred_at"
