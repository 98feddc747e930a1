"""A store's own sending domain: the From address of its mail once SPF and DKIM are published.

1. `sending_domain_add` checks the name and makes a fresh 2048-bit RSA DKIM key for it; the
   admin shows the two records to create (`sending_domain_records`): the SPF TXT on the domain
   that includes MAIL_SPF_INCLUDE, and the DKIM TXT `<selector>._domainkey.<domain>` with the
   public key.
2. `sending_domain_verify` asks DNS through the same injectable resolver as custom domains
   (tenants.dns) and marks the row verified when both are there ("Check now" in the admin, and
   beat's `tenants.custom_domains_verify` pass checks pending ones too).
3. `sender_for(creator_id)` is what the mail code asks: the verified domain's address and key,
   or None (then the platform's DEFAULT_FROM_EMAIL, with the store's name). `dkim_sign` signs a
   message's bytes with the store's key (dkimpy), relaxed/relaxed.

A verified domain is re-checked by the periodic pass: a store that removes its records falls
back to the platform's address rather than sending mail that fails DMARC.
"""

from __future__ import annotations

import base64
import logging
import re
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.identity import domain_key
from tenants.dns import Resolver, ResolverError, default_resolver
from tenants.domains import DnsRecord
from tenants.models import Creator, SendingDomain
from tenants.services import HOST_RE

logger = logging.getLogger(__name__)

_LOCAL_PART_RE = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")


class SendingDomainError(ValueError):
    """The name cannot be used for this store's mail; nothing was written."""


@dataclass(frozen=True)
class Sender:
    """Where a store's mail comes from: the address, and the DKIM key when it is the store's."""

    address: str
    dkim_domain: str = ""
    dkim_selector: str = ""
    dkim_private_key: str = ""


def _keypair() -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # PKCS#1, what dkimpy reads
        serialization.NoEncryption(),
    ).decode("ascii")
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, base64.b64encode(public).decode("ascii")


def sending_domain_errors(*, creator: Creator, domain: str, local_part: str) -> list[str]:
    raw = domain or ""
    if "\x00" in raw or len(raw) > 300:
        return ["enter a domain name of at most 253 characters"]
    host = domain_key(raw)
    problems = []
    if not host:
        problems.append("enter a domain, for example mail.example.com")
    elif not HOST_RE.fullmatch(host) or "." not in host or host.rsplit(".", 1)[1].isdigit():
        problems.append(
            f"{raw!r} is not a valid domain name: use letters, digits and hyphens in "
            "dot-separated labels, for example mail.example.com"
        )
    else:
        platform = domain_key(settings.PLATFORM_DOMAIN)
        if host == platform or host.endswith("." + platform):
            problems.append(f"{host!r} is the platform's domain; mail from it needs no set-up")
        elif SendingDomain.objects.filter(domain=host, verified_at__isnull=False).exists():
            problems.append(f"{host!r} is already in use by another store")
    if not _LOCAL_PART_RE.fullmatch(local_part or ""):
        problems.append(
            "the sender name before @ must be letters, digits, dots, hyphens or underscores"
        )
    if SendingDomain.objects.filter(creator=creator).exists():
        problems.append("this store already has a sending domain; remove it first")
    return problems


def sending_domain_add(
    *, creator: Creator, domain: str, local_part: str = "store"
) -> SendingDomain:
    """Record `domain` as pending for `creator` with a fresh DKIM key; raises SendingDomainError."""
    local_part = (local_part or "").strip().lower()
    errors = sending_domain_errors(creator=creator, domain=domain, local_part=local_part)
    if errors:
        raise SendingDomainError("; ".join(errors))
    private, public = _keypair()
    selector = f"{settings.MAIL_DKIM_SELECTOR_PREFIX}{secrets.token_hex(4)}"
    try:
        with transaction.atomic():
            return SendingDomain.objects.create(
                creator=creator,
                domain=domain_key(domain),
                local_part=local_part,
                dkim_selector=selector,
                dkim_private_key=private,
                dkim_public_key=public,
            )
    except IntegrityError as exc:  # a concurrent add for this store
        raise SendingDomainError("this store already has a sending domain") from exc


def dkim_record_name(row: SendingDomain) -> str:
    return f"{row.dkim_selector}._domainkey.{row.domain}"


def spf_value() -> str:
    return f"v=spf1 include:{settings.MAIL_SPF_INCLUDE} ~all"


def dkim_value(row: SendingDomain) -> str:
    return f"v=DKIM1; k=rsa; p={row.dkim_public_key}"


def sending_domain_records(row: SendingDomain) -> list[DnsRecord]:
    """The DNS records the creator creates at their DNS host. An SPF record they already have
    only needs the `include:` added: one domain may have one SPF record."""
    return [
        DnsRecord("TXT", row.domain, spf_value()),
        DnsRecord("TXT", dkim_record_name(row), dkim_value(row)),
    ]


def _tags(value: str) -> dict[str, str]:
    tags = {}
    for part in value.split(";"):
        name, _, tag_value = part.strip().partition("=")
        tags[name.strip()] = re.sub(r"\s+", "", tag_value)
    return tags


def _dns_problems(row: SendingDomain, resolver: Resolver) -> list[str]:
    problems = []
    include = f"include:{settings.MAIL_SPF_INCLUDE}".lower()
    spf = [v.strip() for v in resolver.txt(row.domain) if v.strip().lower().startswith("v=spf1")]
    if not spf:
        problems.append(f"TXT {row.domain}: no SPF record (v=spf1 …)")
    elif len(spf) > 1:
        problems.append(f"TXT {row.domain}: {len(spf)} SPF records; a domain may have only one")
    elif include not in spf[0].lower().split():
        problems.append(f"TXT {row.domain}: the SPF record does not contain {include}")
    keys = [_tags(v).get("p") for v in resolver.txt(dkim_record_name(row))]
    if row.dkim_public_key not in keys:
        problems.append(f"TXT {dkim_record_name(row)} does not hold this store's DKIM key")
    return problems


def sending_domain_verify(*, row: SendingDomain, resolver: Resolver | None = None) -> bool:
    """Check the records once and record the outcome. True when the domain may be used."""
    resolver = resolver or default_resolver()
    now = timezone.now()
    try:
        problems = _dns_problems(row, resolver)
    except ResolverError as exc:
        # Could not ask: keep the state it had (a verified domain is not dropped on a timeout).
        SendingDomain.objects.filter(pk=row.pk).update(
            last_checked_at=now, last_error=f"DNS could not be asked, will retry: {exc}"[:300]
        )
        row.refresh_from_db()
        return row.verified_at is not None
    error = "; ".join(problems)[:300]
    try:
        with transaction.atomic():
            if problems:
                SendingDomain.objects.filter(pk=row.pk).update(
                    verified_at=None, last_checked_at=now, last_error=error
                )
            else:
                SendingDomain.objects.filter(pk=row.pk, verified_at__isnull=True).update(
                    verified_at=now
                )
                SendingDomain.objects.filter(pk=row.pk).update(last_checked_at=now, last_error="")
    except IntegrityError:  # another store verified the same name at the same moment
        SendingDomain.objects.filter(pk=row.pk).update(
            last_checked_at=now, last_error="the domain is already in use by another store"
        )
    row.refresh_from_db()
    return row.verified_at is not None


def sending_domains_verify_all(*, resolver: Resolver | None = None) -> int:
    """Check every sending domain once (beat); returns how many are usable. One failing row
    never stops the others."""
    resolver = resolver or default_resolver()
    usable = 0
    for row in SendingDomain.objects.order_by("id"):
        try:
            usable += sending_domain_verify(row=row, resolver=resolver)
        except Exception:
            logger.exception("sending domain %s: check failed", row.domain)
    return usable


def sending_domain_remove(*, creator: Creator, row_id: int) -> bool:
    return SendingDomain.objects.filter(pk=row_id, creator=creator).delete()[0] > 0


def sender_for(*, creator_id: int | None) -> Sender:
    """The address a store's mail comes from: its verified domain's, else the platform's."""
    row = (
        SendingDomain.objects.filter(creator_id=creator_id, verified_at__isnull=False).first()
        if creator_id
        else None
    )
    if row is None:
        return Sender(address=settings.DEFAULT_FROM_EMAIL)
    return Sender(
        address=row.from_address,
        dkim_domain=row.domain,
        dkim_selector=row.dkim_selector,
        dkim_private_key=row.dkim_private_key,
    )


SIGNED_HEADERS = (b"from", b"to", b"subject", b"date", b"message-id", b"reply-to", b"mime-version")


def dkim_sign(*, message: bytes, sender: Sender) -> bytes:
    """The `DKIM-Signature: …` header line (with its CRLF) for `message`, or b"" when the
    sender is the platform (the provider signs the platform's own domain)."""
    if not sender.dkim_private_key:
        return b""
    import dkim

    return dkim.sign(
        message,
        sender.dkim_selector.encode(),
        sender.dkim_domain.encode(),
        sender.dkim_private_key.encode(),
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=list(SIGNED_HEADERS),
    )
