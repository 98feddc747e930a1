"""Records the periodic loops gave up on ("Needs attention"): read only, each store its own."""
from django.contrib import admin
from django.db import connection
from django_tenants.utils import get_public_schema_name

from core.admin_readonly import ReadOnlyAdmin
from core.models import LoopFailure


@admin.register(LoopFailure)
class LoopFailureAdmin(ReadOnlyAdmin):
    """A creator sees the records of their own store that failed in a loop: quarantined ones
    (no longer retried) first, with the reason. The platform's admin sees every store's."""

    list_display = ["label_or_id", "loop", "tries", "quarantined_at", "last_failed_at",
                    "last_error"]
    list_filter = ["loop", ("quarantined_at", admin.EmptyFieldListFilter)]
    search_fields = ["record_id", "label", "last_error"]
    ordering = ["quarantined_at", "-last_failed_at"]

    def get_queryset(self, request):
        rows = super().get_queryset(request)
        if connection.schema_name != get_public_schema_name():
            rows = rows.filter(schema_name=connection.schema_name)
        return rows

    @admin.display(description="record", ordering="record_id")
    def label_or_id(self, obj: LoopFailure) -> str:
        return obj.label or obj.record_id
