from django.contrib import admin
from django_tenants.admin import TenantAdminMixin
from django_tenants.utils import get_public_schema_name

from tenants.models import Creator, CustomDomain, Domain


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


@admin.register(CustomDomain)
class CustomDomainAdmin(PublicOnlyAdmin):
    """Operators see every store's custom domains; creators manage theirs on /admin/domains/."""

    list_display = ("domain", "creator", "verified_at", "last_checked_at", "last_error")
    list_filter = (("verified_at", admin.EmptyFieldListFilter),)
    search_fields = ("domain",)
    readonly_fields = ("token", "verified_at", "last_checked_at", "last_error", "created_at")

    def has_add_permission(self, request, *args):
        return False  # added through tenants.domains, which checks the name

    def has_change_permission(self, request, obj=None):
        return False  # verified only by DNS; deleting removes its routing (delete_model)

    def delete_model(self, request, obj):
        from tenants.domains import custom_domain_remove

        custom_domain_remove(creator=obj.creator, custom_domain_id=obj.pk)

    def delete_queryset(self, request, queryset):
        for obj in queryset.select_related("creator"):
            self.delete_model(request, obj)
