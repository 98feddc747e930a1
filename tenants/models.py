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


class Domain(DomainMixin):
    def __str__(self) -> str:
        return self.domain
