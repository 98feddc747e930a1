"""Receipts: one email per paid order, with a link to the order page, the license keys and the
checkout payment's invoice attached; and one per later one-click charge with its invoice."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import connection
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from core import orderkeys
from core.mailerrors import each_email_sent
from payments.models import AttemptStatus, ChargeAttempt
from storefront.models import OWNED_ORDER_STATUSES, Invoice, Order
from storefront.services import mail
from subscriptions.notices import manage_url

logger = logging.getLogger(__name__)

LOOP_RECEIPTS = "storefront.receipts_send_overdue"
LOOP_CHARGE_RECEIPTS = "storefront.charge_receipts_send_overdue"
RECEIPT_OVERDUE = dt.timedelta(minutes=10)  # unsent this long after payment: its task was lost
RECEIPT_WINDOW = dt.timedelta(days=2)  # older than this, a receipt is not worth sending late


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


def _invoice_attach(message, invoice: Invoice) -> None:
    """The invoice as a PDF on the email, unless INVOICE_PDF_ATTACHED is off: the demo's
    history sends its receipts to an outbox in memory that nobody reads, and drawing a PDF
    is most of a receipt's cost. The order page serves the same PDF whenever it is asked."""
    if not settings.INVOICE_PDF_ATTACHED:
        return
    from storefront.invoice_pdf import document_pdf

    message.attach(f"{invoice.display_number}.pdf", document_pdf(invoice), "application/pdf")


def receipt_send(*, order_id: int) -> bool:
    """Email the receipt once. The flag is claimed (and committed) with a conditional UPDATE
    before talking to SMTP, so no order row stays locked during the network call; if sending
    fails the claim is handed back and the task's retry sends it."""
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
    # Each invoice is emailed once: the ones a one-click charge's confirmation has not sent.
    Invoice.objects.filter(pk__in=[i.pk for i in invoices], emailed_at__isnull=True).update(
        emailed_at=claimed_at
    )
    invoices = list(Invoice.objects.filter(pk__in=[i.pk for i in invoices], emailed_at=claimed_at))
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
            # The store's brand in the HTML part (storefront/email/_base.html).
            **mail.brand_context(base_url=store_base_url()),
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
            _invoice_attach(message, invoice)
        message.send(fail_silently=False)
    except Exception:
        Order.objects.filter(pk=order_id, receipt_sent_at=claimed_at).update(receipt_sent_at=None)
        Invoice.objects.filter(order_id=order_id, emailed_at=claimed_at).update(emailed_at=None)
        raise
    return True


def receipts_send_overdue(*, limit: int = 100) -> int:
    """Periodic sweep: receipts still unsent RECEIPT_OVERDUE after their payment, up to
    RECEIPT_WINDOW back (the task lost with a broker's data, or its retries spent while the
    mail server was down): paid orders' receipts, then one-click charges' receipts whose
    invoice has not been emailed. Sent now, once (each send's own claim), oldest first, at
    most `limit` of each per run. The mail server down ends the run (the next one tries
    again); a receipt the server refuses for good is counted against it. Returns the receipts
    sent."""
    now = timezone.now()
    window = (now - RECEIPT_WINDOW, now - RECEIPT_OVERDUE)
    orders = Order.objects.filter(
        receipt_sent_at__isnull=True, paid_at__range=window, status__in=OWNED_ORDER_STATUSES
    ).order_by("paid_at", "pk")
    charges = (
        ChargeAttempt.objects.filter(
            status=AttemptStatus.SUCCEEDED,
            demo=False,
            finished_at__range=window,
            purpose__startswith=f"{orderkeys.ORDER}:",
        )
        .exclude(purpose__endswith=f":{orderkeys.PRIMARY}")
        .exclude(invoice__emailed_at__isnull=False)
        .order_by("finished_at", "pk")
    )
    return each_email_sent(
        LOOP_RECEIPTS,
        orders,
        receipt_send,
        arg="order_id",
        limit=limit,
        what="the receipt of order",
    ) + each_email_sent(
        LOOP_CHARGE_RECEIPTS,
        charges,
        charge_receipt_send,
        arg="attempt_id",
        limit=limit,
        what="the receipt of charge attempt",
    )


def charge_receipt_send(*, attempt_id: int) -> bool:
    """A one-click charge after the checkout (upsell, downsell, cross-sell) gets its own
    short receipt with its invoice attached, once. The invoice row is the claim: a
    conditional UPDATE of its emailed_at, committed before SMTP and handed back if sending
    fails (the task retries). If the order's receipt went out after the charge, it carried
    this invoice already and claimed it: nothing more is sent."""
    from storefront.services.delivery import order_access_ensure
    from storefront.services.invoices import invoice_issue

    attempt = ChargeAttempt.objects.filter(pk=attempt_id).first()
    parsed = orderkeys.order_purpose_parse(attempt.purpose) if attempt else None
    if parsed is None or parsed[1] == orderkeys.PRIMARY:
        return False  # the checkout's payment is in the order's receipt
    invoice = invoice_issue(attempt_id=attempt_id)
    if invoice is None:
        return False
    claimed_at = timezone.now()
    if not Invoice.objects.filter(pk=invoice.pk, emailed_at__isnull=True).update(
        emailed_at=claimed_at
    ):
        return False
    try:
        order = Order.objects.select_related("customer").get(pk=invoice.order_id)
        keys = [row["line_key"] for row in invoice.lines]
        lines = [line for line in order.lines.select_related("product") if line.line_key in keys]
        access = order_access_ensure(order=order, lines=lines)
        context = {
            "order": order,
            "lines": lines,
            "invoice": invoice,
            "total": invoice.total_amount,
            "order_url": order_page_url(order),
            "license_keys": [
                (line.description, access[line.pk].license_key)
                for line in lines
                if line.pk in access and access[line.pk].license_key
            ],
            **mail.brand_context(base_url=store_base_url()),
        }
        message = mail.store_message(
            subject=f"Your receipt for {lines[0].description if lines else 'your purchase'}",
            body=render_to_string("storefront/email/charge_receipt.txt", context),
            html=render_to_string("storefront/email/charge_receipt.html", context),
            to=order.customer.email,
        )
        if message is None:  # the address bounced or complained before: nothing is sent
            logger.info("charge receipt %s not sent: %s", attempt_id, mail.SUPPRESSED)
            return False
        _invoice_attach(message, invoice)
        message.send(fail_silently=False)
    except Exception:
        Invoice.objects.filter(pk=invoice.pk, emailed_at=claimed_at).update(emailed_at=None)
        raise
    return True
