"""Platform-wide periodic work for tenancy (runs in the public schema, never per creator)."""

from __future__ import annotations

import logging

from django.conf import settings
from django_tenants.utils import get_public_schema_name, schema_context

from core.tasks import platform_task

logger = logging.getLogger(__name__)


@platform_task(name="tenants.spares_refill")
def spares_refill() -> int:
    """Top the spare-schema pool up to TENANT_SPARE_SCHEMAS; returns how many were made.

    A second beat's run finds the fill lock taken and makes none (tenants.pool.spares_fill).
    """
    from tenants.pool import spares_fill

    with schema_context(get_public_schema_name()):
        result = spares_fill(settings.TENANT_SPARE_SCHEMAS, limit=settings.TENANT_SPARE_REFILL_MAX)
    if result.failed:
        logger.error("spare schemas: %d failed, first: %s", len(result.failed), result.failed[0])
    return result.made


@platform_task(name="tenants.custom_domains_verify")
def custom_domains_verify() -> int:
    """Check the DNS records of every pending custom domain; returns how many now route."""
    from tenants.domains import custom_domains_verify_pending

    with schema_context(get_public_schema_name()):
        return custom_domains_verify_pending()


@platform_task(name="tenants.mail_upkeep")
def mail_upkeep() -> dict[str, int]:
    """Re-check stores' sending domains (a removed record falls back to the platform's address)
    and read the bounce mailbox, if one is configured. Safe twice at once: a report is applied
    by whoever reads it first (its suppression is unique) and moved aside."""
    from tenants.mailevents import mailbox_collect
    from tenants.sending import sending_domains_verify_all

    with schema_context(get_public_schema_name()):
        return {"sending_domains": sending_domains_verify_all(), "suppressed": mailbox_collect()}
