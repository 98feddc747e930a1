"""Custom domains: a creator brings `shop.example.com`, proves it with DNS, and it routes.

1. `custom_domain_add` checks the name and records it with a fresh token; the admin shows the
   two records to create (`custom_domain_records`): a CNAME to CUSTOM_DOMAIN_TARGET and a TXT
   `_storefront-verify.<domain>` holding the token. Nothing routes yet.
2. `custom_domains_verify_pending` (beat, public schema) asks DNS through an injectable
   resolver (tenants.dns). When both records are there, `custom_domain_verify` creates the
   store's `Domain` row in the same transaction that marks the name verified: from then on the
   name routes to the store, and the store's other hosts redirect buyers to it
   (tenants.routing). A name another store has verified stays refused.
3. `custom_domain_remove` deletes both rows in one transaction; the DELETE triggers make every
   process drop its routing cache at commit, so the name stops routing at once everywhere.

Pending names do not block other stores: a squatter cannot hold a name they cannot prove.
Verified names are not re-checked (removing the DNS records later only breaks the buyer's
resolution, not our routing); the creator removes a name in the admin.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.identity import domain_key
from tenants.dns import Resolver, ResolverError, default_resolver
from tenants.models import Creator, CustomDomain, Domain
from tenants.services import HOST_RE

logger = logging.getLogger(__name__)

VERIFY_PREFIX = "_storefront-verify."
TOKEN_PREFIX = "storefront-verify="


class CustomDomainError(ValueError):
    """The name cannot be added (or verified) for this store; nothing was written."""


@dataclass(frozen=True)
class DnsRecord:
    type: str
    name: str
    value: str


def custom_domain_target() -> str:
    return domain_key(getattr(settings, "CUSTOM_DOMAIN_TARGET", "") or settings.PLATFORM_DOMAIN)


def _platform_domain() -> str:
    return domain_key(settings.PLATFORM_DOMAIN)


def custom_domain_errors(*, creator: Creator, domain: str) -> list[str]:
    """Every reason `domain` cannot be added to `creator`'s store, or []. Writes nothing."""
    raw = domain or ""
    if "\x00" in raw:
        return ["the domain must not contain NUL characters"]
    if len(raw) > 300:
        return ["the domain is too long (at most 253 characters)"]
    host = domain_key(raw)
    if not host:
        return ["enter a domain, for example shop.example.com"]
    if host.startswith("[") or ":" in host:
        return [f"{raw!r} is not a domain name (no scheme, port, path or IPv6 address)"]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [f"{host!r} is an IP address; enter a domain name such as shop.example.com"]
    platform = _platform_domain()
    if host == platform or host.endswith("." + platform):
        return [f"{host!r} is the platform's own domain; your store already has its subdomain"]
    if not HOST_RE.fullmatch(host) or "." not in host or host.rsplit(".", 1)[1].isdigit():
        return [
            f"{raw!r} is not a valid domain name: use letters, digits and hyphens in "
            "dot-separated labels, for example shop.example.com"
        ]
    existing = Domain.objects.filter(domain=host).values_list("tenant_id", flat=True).first()
    if existing is not None:
        if existing == creator.pk:
            return [f"{host!r} already routes to this store"]
        return [f"{host!r} is already in use by another store"]
    if CustomDomain.objects.filter(domain=host, creator=creator).exists():
        return [f"{host!r} is already added to this store"]
    if CustomDomain.objects.filter(domain=host, verified_at__isnull=False).exists():
        return [f"{host!r} is already in use by another store"]
    return []


def custom_domain_add(*, creator: Creator, domain: str) -> CustomDomain:
    """Record `domain` as pending for `creator`, with a fresh token; raises CustomDomainError."""
    errors = custom_domain_errors(creator=creator, domain=domain)
    if errors:
        raise CustomDomainError("; ".join(errors))
    try:
        with transaction.atomic():
            return CustomDomain.objects.create(
                creator=creator, domain=domain_key(domain), token=secrets.token_hex(16)
            )
    except IntegrityError as exc:  # a concurrent add of the same name to this store
        raise CustomDomainError(f"{domain_key(domain)!r} is already added to this store") from exc


def custom_domain_records(custom_domain: CustomDomain) -> list[DnsRecord]:
    """The DNS records the creator creates at their DNS host."""
    return [
        DnsRecord("CNAME", custom_domain.domain, custom_domain_target()),
        DnsRecord("TXT", VERIFY_PREFIX + custom_domain.domain, TOKEN_PREFIX + custom_domain.token),
    ]


def _dns_problems(custom_domain: CustomDomain, resolver: Resolver) -> list[str]:
    host, target = custom_domain.domain, custom_domain_target()
    problems = []
    expected = TOKEN_PREFIX + custom_domain.token
    if expected not in [value.strip() for value in resolver.txt(VERIFY_PREFIX + host)]:
        problems.append(f"TXT {VERIFY_PREFIX}{host} does not hold {expected}")
    cname = resolver.cname(host)
    if cname != target:
        # An apex cannot have a CNAME; a flattened ALIAS/ANAME that resolves to the target's
        # addresses counts too.
        ours = resolver.addresses(target)
        if not (ours and resolver.addresses(host) & ours):
            problems.append(
                f"CNAME {host} points to {cname}, not {target}"
                if cname
                else f"CNAME {host} → {target} is missing"
            )
    return problems


def custom_domain_verify(*, custom_domain: CustomDomain, resolver: Resolver) -> bool:
    """Check the records once; route the name if both are there. True once it routes.

    DNS is asked outside any transaction; the write takes the row's lock and re-checks that no
    other store took the name meanwhile. Failures are recorded on the row for the admin.
    """
    now = timezone.now()
    try:
        problems = _dns_problems(custom_domain, resolver)
    except ResolverError as exc:
        problems = [f"DNS could not be asked, will retry: {exc}"]
    with transaction.atomic():
        row = CustomDomain.objects.select_for_update().filter(pk=custom_domain.pk).first()
        if row is None:  # removed meanwhile
            return False
        if row.verified_at is not None:
            return True
        if not problems:
            owner = Domain.objects.filter(domain=row.domain).values_list("tenant_id", flat=True)
            taken = owner.first()
            if taken is not None and taken != row.creator_id:
                problems = ["the domain is already in use by another store"]
        if problems:
            row.last_checked_at, row.last_error = now, "; ".join(problems)[:300]
            row.save(update_fields=["last_checked_at", "last_error"])
            custom_domain.last_error = row.last_error
            return False
        try:
            with transaction.atomic():
                Domain.objects.get_or_create(
                    domain=row.domain, defaults={"tenant_id": row.creator_id, "is_primary": False}
                )
                row.verified_at, row.last_checked_at, row.last_error = now, now, ""
                row.save(update_fields=["verified_at", "last_checked_at", "last_error"])
        except IntegrityError:  # another store verified the same name at the same moment
            row.last_checked_at = now
            row.last_error = "the domain is already in use by another store"
            row.save(update_fields=["last_checked_at", "last_error"])
            return False
    custom_domain.verified_at = now
    logger.info("custom domain %s verified for %s", row.domain, row.creator_id)
    return True


def custom_domains_verify_pending(*, resolver: Resolver | None = None) -> int:
    """Check every pending name once (beat); returns how many were verified. One failing row
    never stops the others."""
    resolver = resolver or default_resolver()
    verified = 0
    for custom_domain in CustomDomain.objects.filter(verified_at__isnull=True).order_by("id"):
        try:
            verified += custom_domain_verify(custom_domain=custom_domain, resolver=resolver)
        except Exception:
            logger.exception("custom domain %s: verification failed", custom_domain.domain)
    return verified


def custom_domain_remove(*, creator: Creator, custom_domain_id: int) -> bool:
    """Stop routing the name and forget it; only the store's own names. False if not found."""
    with transaction.atomic():
        row = (
            CustomDomain.objects.select_for_update()
            .filter(pk=custom_domain_id, creator=creator)
            .first()
        )
        if row is None:
            return False
        if row.verified_at is not None:
            Domain.objects.filter(domain=row.domain, tenant=creator).delete()
        row.delete()
    return True
