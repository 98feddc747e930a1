"""The platform's own pages on the public schema."""
from django.shortcuts import render
from django_tenants.utils import get_tenant_model


def platform_landing(request):
    creators = get_tenant_model().objects.exclude(schema_name="public")
    creators = creators.prefetch_related("domains")[:50]
    return render(request, "core/landing.html", {"creators": creators})
