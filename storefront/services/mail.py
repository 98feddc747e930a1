"""The store's own voice in email: every message to a buyer is built here.

- From: the store's name (`StoreSettings.sender_name`, else the creator's display name) with
  the store's verified sending domain's address, else the platform's DEFAULT_FROM_EMAIL
  (tenants.sending). Mail from the store's domain carries its DKIM signature.
- Reply-To: the store's support email, so a buyer's reply reaches the creator, not the
  platform.
- An address suppressed after a hard bounce or a complaint (tenants.mailevents) is not mailed:
  `store_message` returns None and the caller records why.
- Every HTML part extends one template, storefront/email/_base.html: the store's logo (or
  name), its accent and the creator's name, from `brand_context`. The plain-text parts are
  written apart and carry no brand.
"""

from __future__ import annotations

from email.utils import formataddr

from django.core.mail import EmailMultiAlternatives
from django.db import connection
from django_tenants.utils import get_public_schema_name, schema_context

from storefront import branding
from storefront.models import StoreSettings
from tenants.mailevents import is_suppressed
from tenants.sending import Sender, dkim_sign, sender_for

SUPPRESSED = "address_suppressed"


class StoreEmail(EmailMultiAlternatives):
    """An EmailMultiAlternatives that adds the store's DKIM signature over its final bytes."""

    def __init__(self, *args, sender: Sender, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sender = sender

    def message(self, *args, **kwargs):
        msg = super().message(*args, **kwargs)
        signature = dkim_sign(message=msg.as_bytes(linesep="\r\n"), sender=self.sender)
        if signature:
            name, _, value = signature.decode("ascii").partition(":")
            # Prepended, as a signer in the path would: the signed headers stay below it.
            msg._headers.insert(0, (name, value.strip().replace("\r\n", "\n")))
        return msg


def _store_identity() -> tuple[str, str, Sender]:
    """(From name, Reply-To, sender) for the current store (read fresh from the public
    schema: a name or domain changed a moment ago applies to the next message)."""
    from tenants.models import Creator

    settings_row = StoreSettings.current()
    schema = connection.schema_name
    with schema_context(get_public_schema_name()):
        creator = Creator.objects.filter(schema_name=schema).only("pk", "display_name").first()
        sender = sender_for(creator_id=creator.pk if creator else None)
    name = settings_row.sender_name or (creator.display_name if creator else "")
    return name, settings_row.support_email, sender


def address_suppressed(address: str) -> bool:
    with schema_context(get_public_schema_name()):
        return is_suppressed(address)


def store_message(
    *, subject: str, body: str, to: str, html: str = "", headers: dict | None = None
) -> StoreEmail | None:
    """The message from this store to `to`, or None when `to` is suppressed."""
    if address_suppressed(to):
        return None
    name, reply_to, sender = _store_identity()
    message = StoreEmail(
        subject=subject,
        body=body,
        from_email=formataddr((name, sender.address)) if name else sender.address,
        to=[to],
        reply_to=[reply_to] if reply_to else None,
        headers=headers or {},
        sender=sender,
    )
    if html:
        message.attach_alternative(html, "text/html")
    return message


# The logo's box in an email's header, in CSS px; the rendition is sharp at twice its width.
EMAIL_LOGO_BOX = (200, 56)


def brand_context(*, base_url: str) -> dict:
    """What storefront/email/_base.html needs: the published brand, the store's name (the
    logo's alt text), and the logo as an absolute URL to its PNG or JPEG rendition with its
    width and height (mail clients show neither AVIF nor WebP reliably, nor `srcset`)."""
    brand = branding.brand_published()
    store_name = getattr(getattr(connection, "tenant", None), "display_name", "") or ""
    found = branding.logo_file(brand, max_width=EMAIL_LOGO_BOX[0], max_height=EMAIL_LOGO_BOX[1])
    logo = None
    if found is not None:
        logo = {"url": base_url + found.path, "width": found.width, "height": found.height}
    return {
        "brand": brand,
        "on_accent": branding.on_accent(brand.accent),
        "store_name": store_name or brand.logo_alt,
        "logo": logo,
    }
