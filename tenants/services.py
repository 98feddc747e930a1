"""Provisioning creators: validate everything first, then create schema, domain and owner."""
from __future__ import annotations

import multiprocessing
import re
import secrets
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connections, transaction
from django_tenants.utils import get_public_schema_name, schema_context, tenant_context

from tenants.models import Creator, Domain
from tenants.provisioning import _template_script, template_ensure

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
    *,
    slug: str,
    display_name: str,
    domain: str,
    owner_email: str,
    password: str | None = None,
    owner_password_usable: bool = True,
) -> ProvisionedCreator:
    """Provision a creator: schema, domain and owner staff user, or nothing at all.

    The schema is cloned from the migrated template (tenants.provisioning), which is plain
    transactional DDL, so the creator row, schema, domain and owner share one transaction.
    With `owner_password_usable=False` the owner gets no password (bulk imports: owners set
    theirs through a reset link), which skips the deliberately slow password hash.
    """
    errors = creator_check(
        slug=slug, display_name=display_name, domain=domain, owner_email=owner_email
    )
    if errors:
        raise ProvisioningError("; ".join(errors))
    if owner_password_usable:
        password = password or secrets.token_urlsafe(12)
    else:
        password = ""
    host = domain.lower()
    with schema_context(get_public_schema_name()):
        template_ensure()  # outside the transaction: the template must be committed to copy
        with transaction.atomic():
            creator = Creator(
                schema_name=schema_name_for(slug),
                slug=slug,
                display_name=display_name.strip(),
                owner_email=owner_email,
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

    With `jobs > 1` creators are made in that many worker processes (one connection each):
    a clone is mostly PostgreSQL building empty indexes, which is CPU-bound in the server.
    """
    result = BulkResult(created=[], failed=[])
    template_ensure()
    _template_script()  # read the template once, before forking, so workers share it
    total = len(specs)

    def record(index: int, spec: CreatorSpec, created, error: str | None) -> None:
        if created is not None:
            result.created.append(created)
        else:
            result.failed.append((spec, error or "failed"))
        if on_progress is not None:
            on_progress(index, total, spec, error)

    if jobs <= 1 or total <= 1:
        for index, spec in enumerate(specs, start=1):
            record(index, spec, *_create_one(spec, owner_password_usable))
        return result
    connections.close_all()
    pool = ProcessPoolExecutor(
        max_workers=jobs, mp_context=multiprocessing.get_context("fork"),
        initializer=forget_inherited_connections,
    )
    with pool:
        futures = {pool.submit(_create_one, spec, owner_password_usable): spec for spec in specs}
        for index, future in enumerate(as_completed(futures), start=1):
            spec = futures[future]
            try:
                created, error = future.result()
            except Exception as exc:  # a worker died
                created, error = None, f"worker failed: {exc}"
            record(index, spec, created, error)
    return result


def _create_one(spec: CreatorSpec, owner_password_usable: bool):
    try:
        return creator_create(
            slug=spec.slug, display_name=spec.display_name, domain=spec.domain,
            owner_email=spec.owner_email, owner_password_usable=owner_password_usable,
        ), None
    except ProvisioningError as exc:
        return None, str(exc)
    except IntegrityError as exc:  # a concurrent duplicate slipped past the checks
        return None, f"conflict: {exc}".splitlines()[0]


def forget_inherited_connections() -> None:
    """In a forked worker: never reuse the parent's sockets (the parent closed them first)."""
    for conn in connections.all(initialized_only=True):
        conn.connection = None
        conn.search_path_set_schemas = None


def public_tenant_ensure(*, domain: str) -> Creator:
    """The platform's own tenant (public schema) and its bare domain; idempotent."""
    with schema_context(get_public_schema_name()):
        public, _ = Creator.objects.get_or_create(
            schema_name=get_public_schema_name(),
            defaults={"slug": "platform", "display_name": "Platform", "owner_email": "ops@" + domain},
        )
        Domain.objects.get_or_create(domain=domain, defaults={"tenant": public, "is_primary": True})
    return public
