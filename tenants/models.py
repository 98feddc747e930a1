"""Creators (tenants) and their domains, in the public schema."""
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin


class Creator(TenantMixin):
    slug = models.SlugField(max_length=40, unique=True)
    display_name = models.CharField(max_length=120)
    owner_email = models.EmailField()
    created_at = models.DateTimeField(auto_now_add=True)

    auto_create_schema = True
    auto_drop_schema = True  # deleting a creator drops its schema: nothing half-left

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.display_name or self.schema_name

    def create_schema(self, check_if_exists=False, sync_schema=True, verbosity=1):
        """Clone the migrated template instead of replaying every migration (provisioning.py)."""
        from django_tenants.utils import schema_exists

        from tenants.provisioning import schema_clone

        if check_if_exists and schema_exists(self.schema_name):
            return False
        if sync_schema:
            schema_clone(self.schema_name)
        return True


class Domain(DomainMixin):
    def __str__(self) -> str:
        return self.domain
