"""The store admin's "Needs attention" badge: how many of this store's records a loop gave up on."""

from django import template
from django.db import connection

from core.models import LoopFailure

register = template.Library()


@register.simple_tag
def quarantined_count() -> int:
    return LoopFailure.objects.filter(
        schema_name=connection.schema_name, quarantined_at__isnull=False
    ).count()
