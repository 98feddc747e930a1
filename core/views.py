"""The platform's own pages on the public schema."""
from django.shortcuts import render

from tenants.models import Creator


def platform_landing(request):
    creators = Creator.objects.exclude(schema_name="public").prefetch_related("domains")[:50]
    return render(request, "core/landing.html", {"creators": creators})
