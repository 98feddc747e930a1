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


class SpareSchema(models.Model):
    """A schema cloned from the template ahead of time, waiting for a creator (tenants.pool).

    Sign-up takes one (`ALTER SCHEMA … RENAME`, O(1)) instead of building ~270 relations while
    the creator waits; beat keeps `TENANT_SPARE_SCHEMAS` of them. No domain points at a spare,
    so nothing routes into one; `migrate_tenants` keeps them current like any creator schema.
    """

    schema_name = models.CharField(max_length=63, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.schema_name
