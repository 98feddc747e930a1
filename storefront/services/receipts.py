"""Receipts: one email per paid order, with a link to the order page, the license keys and the
checkout payment's invoice attached."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from storefront import branding
from storefront.models import OWNED_ORDER_STATUSES, Order
from storefront.services import mail
from subscriptions.notices import manage_url

logger = logging.getLogger(__name__)


def store_base_url() -> str:
    """https://<the store's primary domain>, for links in emails (no request to ask)."""
    tenant = getattr(connection, "tenant", None)
    domain = None
    if tenant is not None and hasattr(tenant, "domains"):
        row = tenant.domains.filter(is_primary=True).first() or tenant.domains.first()
        domain = row.domain if row else None
    scheme = getattr(settings, "STOREFRONT_EMAIL_SCHEME", "https")
    return f"{scheme}://{domain or settings.PLATFORM_DOMAIN}"


def order_page_url(order: Order) -> str:
    return store_base_url() + reverse("order-page", args=[order.token])


def receipt_send(*, order_id: int) -> bool:
    """Email the receipt once. The flag is claimed (and committed) with a conditional UPDATE
    before talking to SMTP, so no order row stays locked during the network call; if sending
    fails the claim is handed back and the task's retry sends it."""
    from storefront.invoice_pdf import document_pdf
    from storefront.services.delivery import LineState, line_states, order_access_ensure
    from storefront.services.invoices import order_invoices_issue
    from storefront.services.subscribe import order_trials

    order = Order.objects.filter(pk=order_id, status__in=OWNED_ORDER_STATUSES).first()
    if order is None or order.receipt_sent_at is not None:
        return False
    # Before the claim: documents are issued once, whoever gets there first.
    invoices = order_invoices_issue(order_id=order_id)
    access = order_access_ensure(order=order)
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
        lines = list(order.lines.select_related("product"))
        states = line_states(order=order, lines=lines)
        keys = [
            (line.description, access[line.pk].license_key)
            for line in lines
            if line.pk in access
            and access[line.pk].license_key
            and states[line.pk] == LineState.ACTIVE
        ]
        brand = branding.brand_published()
        context = {
            "order": order,
            "lines": lines,
            "total": sum(line.total_amount for line in lines),
            # Signed link to the buyer's subscriptions in this store (subscriptions.notices).
            "subscriptions_url": manage_url(customer_id=order.customer_id),
            "order_url": order_page_url(order),
            "license_keys": keys,
            "invoices": invoices,
            "discount": sum(line.discount_amount for line in lines),
            # Free trials: nothing charged for them today, the first charge and its date.
            "trials": order_trials(order=order),
            # The store's brand in the HTML part: its accent, name and the creator's name.
            "brand": brand,
            "on_accent": branding.on_accent(brand.accent),
            "store_name": getattr(connection.tenant, "display_name", ""),
        }
        message = mail.store_message(
            subject=f"Your receipt for order {order.token[:8]}",
            body=render_to_string("storefront/email/receipt.txt", context),
            html=render_to_string("storefront/email/receipt.html", context),
            to=order.customer.email,
        )
        if message is None:  # the address bounced or complained before: nothing is sent
            logger.info("receipt for order %s not sent: %s", order.pk, mail.SUPPRESSED)
            return False
        for invoice in invoices:
            message.attach(
                f"{invoice.display_number}.pdf", document_pdf(invoice), "application/pdf"
            )
        message.send(fail_silently=False)
    except Exception:
        Order.objects.filter(pk=order_id, receipt_sent_at=claimed_at).update(receipt_sent_at=None)
        raise
    return True
