"""A read-only ModelAdmin for rows that services and workers own (ledger, attempts, sends)."""

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Visible to staff, never added, changed or deleted from the admin. Fields listed in
    `exclude` (e.g. a nonce signed into a buyer's link) stay hidden."""

    def get_readonly_fields(self, request, obj=None):
        hidden = set(self.exclude or ())
        return [f.name for f in self.model._meta.fields if f.name not in hidden]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
