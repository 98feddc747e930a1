"""Records the periodic loops gave up on ("Needs attention"): read only, each store its own,
with one action: try them again."""
from django.contrib import admin
from django.db import connection
from django_tenants.utils import get_public_schema_name

from audit.admin import AuditedAdminMixin
from core.admin_readonly import ReadOnlyAdmin
from core.loops import failures_retry
from core.models import LoopFailure


@admin.register(LoopFailure)
class LoopFailureAdmin(AuditedAdminMixin, ReadOnlyAdmin):
    """A creator sees the records of their own store that failed in a loop: quarantined ones
    (no longer retried) first, with the reason. The platform's admin sees every store's.
    "Try again" (audited) clears the selected rows, so their loops take the records up again."""

    list_display = ["label_or_id", "loop", "tries", "quarantined_at", "last_failed_at",
                    "last_error"]
    list_filter = ["loop", ("quarantined_at", admin.EmptyFieldListFilter)]
    search_fields = ["record_id", "label", "last_error"]
    ordering = ["quarantined_at", "-last_failed_at"]
    actions = ["try_again"]

    def get_queryset(self, request):
        rows = super().get_queryset(request)
        if connection.schema_name != get_public_schema_name():
            rows = rows.filter(schema_name=connection.schema_name)
        return rows

    @admin.display(description="record", ordering="record_id")
    def label_or_id(self, obj: LoopFailure) -> str:
        return obj.label or obj.record_id

    @admin.action(description="Try the selected records again")
    def try_again(self, request, queryset):
        on_platform = connection.schema_name == get_public_schema_name()
        count = failures_retry(ids=list(queryset.values_list("pk", flat=True)),
                               schema_name="*" if on_platform else connection.schema_name)
        self.message_user(request, f"{count} record(s) will be tried again on the next run.")
