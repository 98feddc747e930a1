"""The buyer's purchases in this store by magic link: email in, signed link out; no account.

The request page answers the same for every address, known or not, and does the same work in
the request either way (it queues one task); the task mails the link only when the address has
paid orders here. The link carries the store's schema and the address, signed and timestamped
(PURCHASES_LINK_MAX_AGE), so it is worthless on another store and after a day.
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import connection
from django.template.loader import render_to_string
from django.urls import reverse

from core.tasks import enqueue
from storefront.models import Order, OrderStatus
from storefront.services.receipts import store_base_url

PURCHASES_LINK_MAX_AGE = 24 * 3600
_SALT = "storefront.purchases"
# Orders a buyer sees in their list: everything that was paid, refunded ones included (their
# page says so and shows no downloads).
LISTED_STATUSES = (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED)


def _normalize(email: str) -> str:
    return email.strip().lower()


def purchases_link_request(*, email: str) -> None:
    """Queue the mail; what it finds is never visible to the requester."""
    enqueue("storefront.purchases_link_send", email=_normalize(email))


def purchases_token(*, email: str, schema: str) -> str:
    return signing.TimestampSigner(salt=_SALT).sign_object({"s": schema, "e": _normalize(email)})


def purchases_check(*, token: str, schema: str) -> tuple[str | None, bool]:
    """(the address the link is for, expired). (None, False) for anything forged or for
    another store."""
    signer = signing.TimestampSigner(salt=_SALT)
    try:
        data = signer.unsign_object(token, max_age=PURCHASES_LINK_MAX_AGE)
    except signing.SignatureExpired:
        return None, True
    except (signing.BadSignature, ValueError, UnicodeDecodeError):
        return None, False
    if not isinstance(data, dict) or data.get("s") != schema or not isinstance(data.get("e"), str):
        return None, False
    return data["e"], False


def purchases_list(*, email: str) -> list[Order]:
    return list(
        Order.objects.filter(customer__email__iexact=email, status__in=LISTED_STATUSES)
        .prefetch_related("lines", "invoices")
        .order_by("-paid_at", "-pk")
    )


def purchases_link_send(*, email: str) -> bool:
    """Mail the link if `email` has paid orders in this store. True if a mail was sent."""
    email = _normalize(email)
    if not Order.objects.filter(customer__email__iexact=email, status__in=LISTED_STATUSES).exists():
        return False
    tenant = getattr(connection, "tenant", None)
    store_name = getattr(tenant, "display_name", "") or "our store"
    link = store_base_url() + reverse(
        "purchases-list", args=[purchases_token(email=email, schema=connection.schema_name)]
    )
    body = render_to_string(
        "storefront/email/purchases_link.txt",
        {"link": link, "store_name": store_name, "hours": PURCHASES_LINK_MAX_AGE // 3600},
    )
    send_mail(f"Your purchases at {store_name}", body, settings.DEFAULT_FROM_EMAIL, [email])
    return True
