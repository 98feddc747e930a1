"""Provisioning creators: validate everything first, then create schema, domain and owner."""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone
from django_tenants.utils import (
    get_public_schema_name,
    quote_schema_name,
    schema_context,
    tenant_context,
)

from core.identity import domain_key
from tenants.forked import forked_batches
from tenants.models import Creator, Domain
from tenants.names import OPERATOR_MIN_LENGTH, label_errors
from tenants.pool import spare_claim
from tenants.provisioning import _PLACEHOLDER, _template_script, template_ensure

SLUG_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")  # shape only: see tenants.names
HOST_RE = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


class ProvisioningError(ValueError):
    """Bad input for a new creator; nothing was created."""


@dataclass(frozen=True)
class ProvisionedCreator:
    creator: Creator
    domain: str
    admin_username: str
    admin_password: str


def creator_check(
    *,
    slug: str,
    display_name: str,
    domain: str,
    owner_email: str,
    slug_min_length: int = OPERATOR_MIN_LENGTH,
) -> list[str]:
    """Every reason the input cannot make a creator, or an empty list. Writes nothing."""
    errors = _format_errors(
        slug=slug,
        display_name=display_name,
        domain=domain,
        owner_email=owner_email,
        slug_min_length=slug_min_length,
    )
    host = domain_key(domain)
    with schema_context(get_public_schema_name()):
        if SLUG_RE.match(slug or "") and Creator.objects.filter(slug=slug).exists():
            errors.append(f"slug {slug!r} is taken")
        if Domain.objects.filter(domain=host).exists():
            errors.append(f"domain {host!r} is taken")
    return errors


def _format_errors(
    *,
    slug: str,
    display_name: str,
    domain: str,
    owner_email: str,
    slug_min_length: int = OPERATOR_MIN_LENGTH,
) -> list[str]:
    """What is wrong with the input itself, without looking at the database."""
    errors: list[str] = []
    # One validator for operators and self-serve sign-up (tenants.names).
    errors += label_errors(slug, what="slug", min_length=slug_min_length)
    if not (display_name or "").strip():
        errors.append("display name must not be empty")
    host = domain_key(domain)
    if not HOST_RE.match(host):
        errors.append(f"domain {domain!r} is not a valid host name")
    try:
        validate_email(owner_email)
    except ValidationError:
        errors.append(f"owner email {owner_email!r} is not a valid email address")
    return errors


def schema_name_for(slug: str) -> str:
    return slug.replace("-", "_")


def creator_create(
    *,
    slug: str,
    display_name: str,
    domain: str,
    owner_email: str,
    password: str | None = None,
    owner_password_usable: bool = True,
    self_serve: bool = False,
    slug_min_length: int = OPERATOR_MIN_LENGTH,
) -> ProvisionedCreator:
    """Provision a creator: schema, domain and owner staff user, or nothing at all.

    An operator's store starts verified and charging on the platform account; a self-serve
    one (`self_serve=True`, tenants.signup) starts unverified and must connect payouts.

    The schema is cloned from the migrated template (tenants.provisioning), which is plain
    transactional DDL, so the creator row, schema, domain and owner share one transaction.
    With `owner_password_usable=False` the owner gets no password (bulk imports: owners set
    theirs through a reset link), which skips the deliberately slow password hash.
    """
    errors = creator_check(
        slug=slug,
        display_name=display_name,
        domain=domain,
        owner_email=owner_email,
        slug_min_length=slug_min_length,
    )
    if errors:
        raise ProvisioningError("; ".join(errors))
    if owner_password_usable:
        password = password or secrets.token_urlsafe(12)
    else:
        password = ""
    host = domain_key(domain)
    with schema_context(get_public_schema_name()):
        template_ensure()  # outside the transaction: the template must be committed to copy
        with transaction.atomic():
            creator = Creator(
                schema_name=schema_name_for(slug),
                slug=slug,
                display_name=display_name.strip(),
                owner_email=owner_email,
                email_verified_at=None if self_serve else timezone.now(),
                payouts_required=self_serve,
            )
            creator.save()
            Domain.objects.create(domain=host, tenant=creator, is_primary=True)
            with tenant_context(creator):
                get_user_model().objects.create_superuser(
                    username="owner", email=owner_email, password=password or None
                )
    return ProvisionedCreator(creator, host, "owner", password)


@dataclass(frozen=True)
class CreatorSpec:
    slug: str
    display_name: str
    domain: str
    owner_email: str


@dataclass
class BulkResult:
    created: list[ProvisionedCreator]
    failed: list[tuple[CreatorSpec, str]]


def creators_create_bulk(
    specs: list[CreatorSpec],
    *,
    owner_password_usable: bool = False,
    jobs: int = 1,
    on_progress: Callable[[int, int, CreatorSpec, str | None], None] | None = None,
) -> BulkResult:
    """Provision many creators, each all-or-nothing; a bad row is reported, the rest proceed.

    Every row is checked first, all at once (two queries for taken slugs and domains, plus
    duplicates within the batch). Each good row then costs, in one transaction, a spare schema
    renamed (tenants.pool) or else one round trip of the template's DDL, and one statement
    writing the creator, its domain and its owner. With `jobs > 1` creators are made in that
    many worker processes (one connection each). A clone is server work, not Python: on
    PostgreSQL 15 each of the ~150 btree indexes of a schema is built and fsynced on its own,
    so a backend spends a good part of a clone waiting on the disk, and a few more jobs than
    cores keep both cores busy.
    """
    result = BulkResult(created=[], failed=[])
    template_ensure()
    _template_script()  # read the template once, before forking, so workers share it
    total = len(specs)
    done = 0

    def record(spec: CreatorSpec, created, error: str | None) -> None:
        nonlocal done
        done += 1
        if created is not None:
            result.created.append(created)
        else:
            result.failed.append((spec, error or "failed"))
        if on_progress is not None:
            on_progress(done, total, spec, error)

    good: list[CreatorSpec] = []
    for spec, errors in _check_all(specs):
        if errors:
            record(spec, None, "; ".join(errors))
        else:
            good.append(spec)
    if jobs <= 1 or len(good) <= 1:
        for spec in good:
            record(spec, *_create_prepared(spec, owner_password_usable))
        return result
    work = functools.partial(_create_batch, owner_password_usable=owner_password_usable)
    for spec, (created, error) in forked_batches(
        work, good, jobs=jobs, failed=lambda spec, exc: (None, f"worker failed: {exc}")
    ):
        record(spec, created, error)
    return result


def _check_all(specs: list[CreatorSpec]) -> list[tuple[CreatorSpec, list[str]]]:
    """creator_check for a whole batch in two queries; a repeat within the batch is taken too."""
    slugs = {s.slug for s in specs}
    hosts = {domain_key(s.domain) for s in specs}
    with schema_context(get_public_schema_name()):
        taken_slugs = set(Creator.objects.filter(slug__in=slugs).values_list("slug", flat=True))
        taken_hosts = set(Domain.objects.filter(domain__in=hosts).values_list("domain", flat=True))
    checked = []
    for spec in specs:
        host = domain_key(spec.domain)
        errors = _format_errors(
            slug=spec.slug,
            display_name=spec.display_name,
            domain=spec.domain,
            owner_email=spec.owner_email,
        )
        if SLUG_RE.match(spec.slug or "") and spec.slug in taken_slugs:
            errors.append(f"slug {spec.slug!r} is taken")
        if host in taken_hosts:
            errors.append(f"domain {host!r} is taken")
        if not errors:
            taken_slugs.add(spec.slug)
            taken_hosts.add(host)
        checked.append((spec, errors))
    return checked


_ROWS = """
WITH c AS (
    INSERT INTO {public}.tenants_creator (schema_name, slug, display_name, owner_email, created_at,
                                          email_verified_at)
    VALUES (%(schema)s, %(slug)s, %(display_name)s, %(owner_email)s, now(), now()) RETURNING id
), d AS (
    INSERT INTO {public}.tenants_domain (domain, is_primary, tenant_id)
    SELECT %(domain)s, true, id FROM c
), u AS (
    INSERT INTO {schema}.auth_user (password, is_superuser, username, first_name, last_name,
                                    email, is_staff, is_active, date_joined)
    VALUES (%(password)s, true, 'owner', '', '', %(owner_email)s, true, true, now())
)
SELECT id FROM c
"""


def _create_batch(specs: list[CreatorSpec], owner_password_usable: bool):
    return [_create_prepared(spec, owner_password_usable) for spec in specs]


def _create_prepared(spec: CreatorSpec, owner_password_usable: bool):
    """One checked creator: schema, creator row, domain and owner in one transaction."""
    from django.contrib.auth.hashers import make_password

    schema = schema_name_for(spec.slug)
    password = secrets.token_urlsafe(12) if owner_password_usable else ""
    ddl = _template_script().sql.replace(_PLACEHOLDER, quote_schema_name(schema))
    rows = _ROWS.format(
        public=quote_schema_name(get_public_schema_name()), schema=quote_schema_name(schema)
    )
    params = {
        "schema": schema,
        "slug": spec.slug,
        "display_name": spec.display_name.strip(),
        "owner_email": spec.owner_email,
        "domain": domain_key(spec.domain),
        "password": make_password(password or None),
    }
    try:
        with transaction.atomic(), connection.search_path_not_needed():
            if spare_claim(schema) is None:  # a spare made ahead of time, else clone now
                with connection.cursor() as cursor:
                    cursor.execute(ddl)
            with connection.cursor() as cursor:
                cursor.execute(rows, params)
                (creator_id,) = cursor.fetchone()
    except IntegrityError as exc:  # a concurrent duplicate slipped past the checks
        return None, f"conflict: {exc}".splitlines()[0]
    except DatabaseError as exc:  # e.g. a schema of that name left by hand
        return None, f"{type(exc).__name__}: {exc}".splitlines()[0]
    creator = Creator(
        id=creator_id,
        schema_name=schema,
        slug=spec.slug,
        display_name=params["display_name"],
        owner_email=spec.owner_email,
    )
    return ProvisionedCreator(creator, params["domain"], "owner", password), None


def public_tenant_ensure(*, domain: str) -> Creator:
    """The platform's own tenant (public schema) and its bare domain; idempotent."""
    with schema_context(get_public_schema_name()):
        public, _ = Creator.objects.get_or_create(
            schema_name=get_public_schema_name(),
            defaults={
                "slug": "platform",
                "display_name": "Platform",
                "owner_email": "ops@" + domain,
            },
        )
        Domain.objects.get_or_create(domain=domain, defaults={"tenant": public, "is_primary": True})
    return public
