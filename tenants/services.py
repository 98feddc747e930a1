"""Provisioning creators: validate everything first, then create schema, domain and owner."""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django_tenants.utils import get_public_schema_name, schema_context, tenant_context

from tenants.models import Creator, Domain

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")
HOST_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
RESERVED_SLUGS = {"public", "www", "admin", "api", "static", "media", "platform", "information-schema"}


class ProvisioningError(ValueError):
    """Bad input for a new creator; nothing was created."""


@dataclass(frozen=True)
class ProvisionedCreator:
    creator: Creator
    domain: str
    admin_username: str
    admin_password: str


def creator_check(*, slug: str, display_name: str, domain: str, owner_email: str) -> list[str]:
    """Every reason the input cannot make a creator, or an empty list. Writes nothing."""
    errors: list[str] = []
    if not SLUG_RE.match(slug or ""):
        errors.append(
            f"slug {slug!r} must be 2-40 characters: lower-case letters, digits and hyphens, "
            "starting with a letter"
        )
    elif slug in RESERVED_SLUGS or slug.startswith("pg-"):
        errors.append(f"slug {slug!r} is reserved")
    if not (display_name or "").strip():
        errors.append("display name must not be empty")
    host = (domain or "").lower()
    if not HOST_RE.match(host):
        errors.append(f"domain {domain!r} is not a valid host name")
    try:
        validate_email(owner_email)
    except ValidationError:
        errors.append(f"owner email {owner_email!r} is not a valid email address")
    with schema_context(get_public_schema_name()):
        if SLUG_RE.match(slug or "") and Creator.objects.filter(slug=slug).exists():
            errors.append(f"slug {slug!r} is taken")
        if Domain.objects.filter(domain=host).exists():
            errors.append(f"domain {host!r} is taken")
    return errors


def schema_name_for(slug: str) -> str:
    return slug.replace("-", "_")


def creator_create(
    *, slug: str, display_name: str, domain: str, owner_email: str, password: str | None = None
) -> ProvisionedCreator:
    """Provision a creator: schema, domain and owner staff user, or nothing at all."""
    errors = creator_check(
        slug=slug, display_name=display_name, domain=domain, owner_email=owner_email
    )
    if errors:
        raise ProvisioningError("; ".join(errors))
    password = password or secrets.token_urlsafe(12)
    host = domain.lower()
    with schema_context(get_public_schema_name()):
        creator = Creator(
            schema_name=schema_name_for(slug),
            slug=slug,
            display_name=display_name.strip(),
            owner_email=owner_email,
        )
        try:
            # Creating the schema runs DDL that cannot share a transaction with the rows
            # below across every backend state, so on any failure we undo it explicitly.
            creator.save()
            with transaction.atomic():
                Domain.objects.create(domain=host, tenant=creator, is_primary=True)
            with tenant_context(creator):
                get_user_model().objects.create_superuser(
                    username="owner", email=owner_email, password=password
                )
        except Exception:
            _creator_undo(creator)
            raise
    return ProvisionedCreator(creator, host, "owner", password)


def _creator_undo(creator: Creator) -> None:
    connection.set_schema_to_public()
    if connection.in_atomic_block:
        # Deferred foreign-key checks would block DROP SCHEMA inside an outer transaction.
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    if creator.pk:
        Domain.objects.filter(tenant_id=creator.pk).delete()
        creator.delete(force_drop=True)
    else:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{creator.schema_name}" CASCADE')


def public_tenant_ensure(*, domain: str) -> Creator:
    """The platform's own tenant (public schema) and its bare domain; idempotent."""
    with schema_context(get_public_schema_name()):
        public, _ = Creator.objects.get_or_create(
            schema_name=get_public_schema_name(),
            defaults={"slug": "platform", "display_name": "Platform", "owner_email": "ops@" + domain},
        )
        Domain.objects.get_or_create(domain=domain, defaults={"tenant": public, "is_primary": True})
    return public
