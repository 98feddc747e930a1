"""Receipts and delivery links."""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.db import connection
from django.template.loader import render_to_string
from django.utils import timezone

from storefront import branding
from storefront.models import OWNED_ORDER_STATUSES, Order, OrderLine

DOWNLOAD_MAX_AGE = 7 * 24 * 3600  # a delivery link is valid for a week
_SALT = "storefront.download"


def download_token(*, line: OrderLine, schema: str) -> str:
    # The schema is signed in: a link from one store is worthless on another.
    return signing.dumps({"line": line.pk, "order": line.order_id, "schema": schema}, salt=_SALT)


def download_check(*, token: str, schema: str) -> int | None:
    """The line id a delivery link grants, or None if forged, expired or for another store."""
    try:
        data = signing.loads(token, salt=_SALT, max_age=DOWNLOAD_MAX_AGE)
    except signing.BadSignature:
        return None
    return data["line"] if data.get("schema") == schema else None


def receipt_send(*, order_id: int) -> bool:
    """Email the receipt once. The flag is claimed (and committed) with a conditional UPDATE
    before talking to SMTP, so no order row stays locked during the network call; if sending
    fails the claim is handed back and the task's retry sends it."""
    claimed_at = timezone.now()
    claimed = Order.objects.filter(
        pk=order_id,
        receipt_sent_at__isnull=True,
        status__in=OWNED_ORDER_STATUSES,
    ).update(receipt_sent_at=claimed_at)
    if not claimed:
        return False
    try:
        order = Order.objects.select_related("customer").get(pk=order_id)
        lines = list(order.lines.all())
        brand = branding.brand_published()
        context = {
            "order": order,
            "lines": lines,
            "total": sum(line.total_amount for line in lines),
            # The store's brand in the HTML part: its accent, name and the creator's name.
            "brand": brand,
            "on_accent": branding.on_accent(brand.accent),
            "store_name": getattr(connection.tenant, "display_name", ""),
        }
        message = EmailMultiAlternatives(
            f"Your receipt for order {order.token[:8]}",
            render_to_string("storefront/email/receipt.txt", context),
            settings.DEFAULT_FROM_EMAIL,
            [order.customer.email],
        )
        message.attach_alternative(
            render_to_string("storefront/email/receipt.html", context), "text/html"
        )
        message.send()
    except Exception:
        Order.objects.filter(pk=order_id, receipt_sent_at=claimed_at).update(receipt_sent_at=None)
        raise
    return True
