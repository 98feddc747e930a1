"""Invoices and credit notes: numbered per store, without gaps, frozen when issued.

One invoice per successful payment of an order (the checkout's, and each one-click charge after
it), listing the lines that payment paid for. One credit note per gateway refund, against the
invoice of the payment it gave money back from. Invoices (INV-000001, …) and credit notes
(CN-000001, …) are two sequences, each gap-free: the number is taken from the store's
`DocumentCounter` row, locked with SELECT … FOR UPDATE inside the transaction that writes the
document, so concurrent issues queue on the row and a rolled-back transaction gives its number
back. The order row is locked first (then the counter), so two workers issuing for the same
payment make one document.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection, transaction
from django.db.models import Min
from django.utils import timezone

from core import orderkeys
from core.loops import each_record, quarantined_ids
from payments.models import AttemptStatus, ChargeAttempt, LedgerEntry, LedgerKind, Refund
from storefront.delivery_models import DocumentKind
from storefront.models import (
    CreditNote,
    DocumentCounter,
    Invoice,
    Order,
    OrderLine,
    StoreSettings,
)
from storefront.pricing import Jurisdiction, tax_rate_for


def _next_number(kind: str) -> int:
    """Inside the issuing transaction: the next number of `kind`, its counter row locked until
    that transaction ends."""
    counter = DocumentCounter.objects.select_for_update().filter(kind=kind).first()
    if counter is None:  # the migration makes both rows; a store that lost one gets it back
        DocumentCounter.objects.bulk_create([DocumentCounter(kind=kind)], ignore_conflicts=True)
        counter = DocumentCounter.objects.select_for_update().get(kind=kind)
    counter.last_number += 1
    counter.save(update_fields=["last_number"])
    return counter.last_number


def _seller() -> dict:
    store = StoreSettings.current()
    tenant = getattr(connection, "tenant", None)
    name = store.seller_name or (getattr(tenant, "display_name", "") or "")
    return {
        "name": name,
        "address": store.seller_address,
        "tax_id": store.seller_tax_id,
        "email": store.support_email,
    }


def _buyer(order: Order) -> dict:
    evidence = order.tax_evidence if isinstance(order.tax_evidence, dict) else {}
    return {
        "email": order.customer.email,
        "country": order.country,
        "region": order.region,
        # A business buyer's VAT ID (checked at checkout: Order.vat_id), else one the tax
        # evidence recorded.
        "vat_id": str(order.vat_id or evidence.get("vat_id", "") or "")[:40],
        # A valid EU VAT ID from another country: no VAT charged, and the invoice says why.
        "reverse_charge": bool(order.reverse_charge),
    }


def _line_row(line: OrderLine, tax_names: dict) -> dict:
    place = (line.tax_country, line.tax_region)
    if place not in tax_names:
        tax_names[place] = tax_rate_for(Jurisdiction(line.tax_country, line.tax_region))[1]
    return {
        "line_key": line.line_key,
        "kind": line.kind,
        "description": line.description,
        "net": line.net_amount,
        "tax": line.tax_amount,
        "total": line.total_amount,
        "tax_rate": str(line.tax_rate),
        "tax_name": tax_names[place],
        "tax_inclusive": line.tax_inclusive,
        "reverse_charge": line.reverse_charge,
    }


def invoice_issue(*, attempt_id: int) -> Invoice | None:
    """The invoice of a succeeded order payment, issued once; None if the attempt is not a
    succeeded payment of an order with lines."""
    attempt = ChargeAttempt.objects.filter(pk=attempt_id).first()
    if attempt is None or attempt.status != AttemptStatus.SUCCEEDED:
        return None
    parsed = orderkeys.order_purpose_parse(attempt.purpose)
    if parsed is None:
        return None
    with transaction.atomic():
        order = (
            Order.objects.select_for_update(of=("self",))
            .select_related("customer")
            .filter(pk=parsed[0])
            .first()
        )
        if order is None:
            return None
        existing = Invoice.objects.filter(attempt=attempt).first()
        if existing is not None:
            return existing
        allocation = attempt.allocation or {}
        lines = [line for line in order.lines.all() if line.line_key in allocation]
        if not lines:
            return None
        tax_names: dict = {}
        rows = [_line_row(line, tax_names) for line in lines]
        return Invoice.objects.create(
            number=_next_number(DocumentKind.INVOICE),
            order=order,
            attempt=attempt,
            issued_at=attempt.finished_at or timezone.now(),
            currency=order.currency,
            net_amount=sum(r["net"] for r in rows),
            tax_amount=sum(r["tax"] for r in rows),
            total_amount=sum(r["total"] for r in rows),
            lines=rows,
            seller=_seller(),
            buyer=_buyer(order),
        )


def order_invoices_issue(*, order_id: int) -> list[Invoice]:
    """Issue the invoice of every succeeded payment of the order that has none yet."""
    prefix = orderkeys.order_reference(order_id) + ":"
    attempts = ChargeAttempt.objects.filter(
        purpose__startswith=prefix, status=AttemptStatus.SUCCEEDED
    ).order_by("pk")
    issued = [invoice_issue(attempt_id=a.pk) for a in attempts]
    return [invoice for invoice in issued if invoice is not None]


def _tax_part(amount: int, *, total: int, tax: int) -> int:
    if total <= 0 or tax <= 0:
        return 0
    value = Decimal(amount) * Decimal(tax) / Decimal(total)
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def credit_note_issue(*, refund_ref: str) -> CreditNote | None:
    """The credit note of one gateway refund (re_…), issued once, after the invoice it
    refers to (issued first if a worker has not done it yet). None if the ledger has no such
    refund of an order, or no invoice covers its lines."""
    entries = list(
        LedgerEntry.objects.filter(kind=LedgerKind.REFUND, gateway_ref=refund_ref).order_by("pk")
    )
    if not entries:
        return None
    order_id = orderkeys.order_reference_parse(entries[0].reference)
    if order_id is None:
        return None
    if CreditNote.objects.filter(refund_ref=refund_ref).exists():
        return CreditNote.objects.get(refund_ref=refund_ref)
    order_invoices_issue(order_id=order_id)
    with transaction.atomic():
        order = Order.objects.select_for_update().filter(pk=order_id).first()
        if order is None:
            return None
        existing = CreditNote.objects.filter(refund_ref=refund_ref).first()
        if existing is not None:
            return existing
        invoices = list(order.invoices.all())
        by_key = {row["line_key"]: (inv, row) for inv in invoices for row in inv.lines}
        if entries[0].line_key not in by_key:
            return None
        invoice = by_key[entries[0].line_key][0]
        taxes = {
            r.line_key: r.tax_amount
            for r in Refund.objects.filter(gateway_ref=refund_ref, reference=order.reference)
        }
        rows = []
        for entry in entries:
            found = by_key.get(entry.line_key)
            if found is None or found[0].pk != invoice.pk:
                continue  # a refund belongs to one payment, so to one invoice
            line = found[1]
            tax = taxes.get(entry.line_key)
            if tax is None:  # refunded at the gateway: the tax part in proportion
                tax = _tax_part(entry.amount, total=line["total"], tax=line["tax"])
            tax = min(tax, entry.amount)
            rows.append(
                {
                    **line,
                    "net": entry.amount - tax,
                    "tax": tax,
                    "total": entry.amount,
                }
            )
        return CreditNote.objects.create(
            number=_next_number(DocumentKind.CREDIT_NOTE),
            invoice=invoice,
            refund_ref=refund_ref,
            issued_at=entries[0].created_at,
            currency=invoice.currency,
            net_amount=sum(r["net"] for r in rows),
            tax_amount=sum(r["tax"] for r in rows),
            total_amount=sum(r["total"] for r in rows),
            lines=rows,
            seller=invoice.seller,
            buyer=invoice.buyer,
        )


LOOP_CREDIT_NOTES = "storefront.credit_notes_issue_overdue"
CREDIT_NOTE_OVERDUE = dt.timedelta(minutes=10)  # no credit note this long after: task lost
CREDIT_NOTE_WINDOW = dt.timedelta(days=30)  # how far back the sweep looks


def credit_notes_issue_overdue(*, limit: int = 200) -> int:
    """Periodic sweep: refunds of orders recorded CREDIT_NOTE_OVERDUE ago or more (up to
    CREDIT_NOTE_WINDOW back) that have no credit note: their `storefront.credit_note_issue`
    task was lost with a broker's data. The store's books would miss them until someone
    opened the order. Issued now, once (`credit_note_issue` is), oldest first, at most
    `limit` a run, a refund that keeps failing quarantined (core.loops). Returns how many
    were issued."""
    now = timezone.now()
    refs = (
        LedgerEntry.objects.filter(
            kind=LedgerKind.REFUND,
            reference__regex=orderkeys.ORDER_REFERENCE_RE,
            created_at__range=(now - CREDIT_NOTE_WINDOW, now - CREDIT_NOTE_OVERDUE),
        )
        .exclude(gateway_ref__in=CreditNote.objects.values("refund_ref"))
        .exclude(gateway_ref__in=quarantined_ids(LOOP_CREDIT_NOTES))
        .values("gateway_ref")
        .annotate(first=Min("created_at"))
        .order_by("first", "gateway_ref")
        .values_list("gateway_ref", flat=True)[:limit]
    )
    run = each_record(
        LOOP_CREDIT_NOTES,
        list(refs),
        lambda ref: credit_note_issue(refund_ref=ref),
        label=lambda ref: f"the credit note of refund {ref}",
    )
    return sum(1 for note in run.results if note is not None)
