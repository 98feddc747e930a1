from django.contrib import admin
from django_tenants.admin import TenantAdminMixin
from django_tenants.utils import get_public_schema_name

from tenants.models import Creator, Domain


class PublicOnlyAdmin(admin.ModelAdmin):
    """Creators and domains are managed from the platform's own admin only."""

    @staticmethod
    def _on_platform(request) -> bool:
        return getattr(request, "tenant", None) is not None and (
            request.tenant.schema_name == get_public_schema_name()
        )

    def has_module_permission(self, request):
        return self._on_platform(request) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return self._on_platform(request) and super().has_view_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._on_platform(request) and super().has_change_permission(request, obj)

    def has_add_permission(self, request, *args):
        return self._on_platform(request) and super().has_add_permission(request, *args)

    def has_delete_permission(self, request, obj=None):
        return self._on_platform(request) and super().has_delete_permission(request, obj)


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0


@admin.register(Creator)
class CreatorAdmin(TenantAdminMixin, PublicOnlyAdmin):
    list_display = ("slug", "display_name", "schema_name", "owner_email", "created_at")
    search_fields = ("slug", "display_name", "owner_email")
    inlines = [DomainInline]


@admin.register(Domain)
class DomainAdmin(PublicOnlyAdmin):
    list_display = ("domain", "tenant", "is_primary")
    search_fields = ("domain",)
