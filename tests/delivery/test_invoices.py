"""Invoices and credit notes: one per payment / refund, frozen, numbered per store without
gaps under concurrency and rollbacks, as PDF from the order page and attached to the receipt."""

import threading

import pytest
from django.core import mail
from django.db import connection, transaction
from django_tenants.utils import schema_context

from payments.models import LedgerEntry, LedgerKind, Refund, RefundStatus
from storefront.models import CreditNote, DocumentCounter, Invoice, StoreSettings
from storefront.services import invoices, receipts
from tests.concurrency import in_threads
from tests.delivery_support import paid_order
from tests.factories import ProductFactory, TaxRateFactory


def _last(kind: str) -> int:
    """The store's last number of `kind` (committing tests empty the table: then none yet)."""
    counter = DocumentCounter.objects.filter(kind=kind).first()
    return counter.last_number if counter else 0


def _attempt_id(order) -> int:
    return order.invoices.model.attempt.field.related_model.objects.get(
        reference=order.reference
    ).pk


def _refund(order, line, amount, ref, *, tax):
    Refund.objects.create(
        idempotency_key=f"k-{ref}",
        reference=order.reference,
        line_key=line.line_key,
        payment_ref="pi_x",
        amount=amount,
        tax_amount=tax,
        currency="USD",
        status=RefundStatus.SUCCEEDED,
        gateway_ref=ref,
    )
    LedgerEntry.objects.create(
        kind=LedgerKind.REFUND,
        gateway_ref=ref,
        reference=order.reference,
        line_key=line.line_key,
        amount=amount,
        currency="USD",
    )


def test_a_paid_order_gets_one_frozen_invoice_with_seller_buyer_and_tax_lines(tenant):
    TaxRateFactory(country="DE", rate="19.000", name="VAT")
    StoreSettings.objects.update_or_create(
        pk=1,
        defaults={
            "seller_name": "Ada Photo GmbH",
            "seller_address": "Hauptstr. 1\nBerlin",
            "seller_tax_id": "DE123",
        },
    )
    core, bump = (
        ProductFactory(name="Course", price_amount=4900),
        ProductFactory(name="Presets", price_amount=900),
    )
    order = paid_order(products=[core, bump], email="fan@example.com")
    first = invoices.invoice_issue(attempt_id=_attempt_id(order))
    again = invoices.invoice_issue(attempt_id=_attempt_id(order))
    assert again.pk == first.pk and Invoice.objects.count() == 1
    start = first.number
    assert first.display_number == f"INV-{start:06d}"
    assert [(r["description"], r["net"], r["tax"], r["total"]) for r in first.lines] == [
        ("Course", 4900, 931, 5831),
        ("Presets", 900, 171, 1071),
    ]
    assert {r["tax_name"] for r in first.lines} == {"VAT"}
    assert (first.net_amount, first.tax_amount, first.total_amount) == (5800, 1102, 6902)
    assert first.seller == {
        "name": "Ada Photo GmbH",
        "address": "Hauptstr. 1\nBerlin",
        "tax_id": "DE123",
        "email": "",
    }
    assert first.buyer["email"] == "fan@example.com" and first.buyer["country"] == "DE"
    # Frozen: later changes to the store do not rewrite an issued invoice.
    StoreSettings.current()  # the row exists: a committing test may have emptied the table
    StoreSettings.objects.filter(pk=1).update(seller_name="Someone else")
    first.refresh_from_db()
    assert first.seller["name"] == "Ada Photo GmbH"


def test_the_buyer_vat_id_from_the_tax_evidence_is_on_the_invoice(tenant):
    order = paid_order(products=[ProductFactory()])
    type(order).objects.filter(pk=order.pk).update(tax_evidence={"vat_id": "FR40303265045"})
    invoice = invoices.invoice_issue(attempt_id=_attempt_id(order))
    assert invoice.buyer["vat_id"] == "FR40303265045"


def test_a_reverse_charged_sale_states_it_and_the_buyers_vat_id_on_the_invoice(tenant):
    """A business buyer with a valid VAT ID from another EU country (issue 22): the invoice
    carries the VAT ID and the reverse-charge statement, in the frozen row and the PDF."""
    from storefront.invoice_pdf import document_pdf, document_statements
    from storefront.tax.providers import REVERSE_CHARGE_NOTE

    order = paid_order(products=[ProductFactory()])
    type(order).objects.filter(pk=order.pk).update(vat_id="DE136695976", reverse_charge=True)
    order.lines.update(reverse_charge=True)
    invoice = invoices.invoice_issue(attempt_id=_attempt_id(order))
    assert invoice.buyer["vat_id"] == "DE136695976" and invoice.buyer["reverse_charge"] is True
    assert all(line["reverse_charge"] for line in invoice.lines)
    assert document_statements(invoice) == [REVERSE_CHARGE_NOTE]
    assert document_pdf(invoice).startswith(b"%PDF-")  # drawn below the totals
    plain = paid_order(products=[ProductFactory()], email="consumer@example.com")
    consumer = invoices.invoice_issue(attempt_id=_attempt_id(plain))
    assert consumer.buyer["reverse_charge"] is False and document_statements(consumer) == []
    assert "Article 196" in REVERSE_CHARGE_NOTE


def test_a_rolled_back_issue_gives_its_number_back(tenant):
    product = ProductFactory()
    first, second = paid_order(products=[product]), paid_order(products=[product])
    before = _last("invoice")

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        made = invoices.invoice_issue(attempt_id=_attempt_id(first))
        assert made.number == before + 1
        raise Boom
    assert _last("invoice") == before
    assert not Invoice.objects.exists()
    a = invoices.invoice_issue(attempt_id=_attempt_id(second))
    b = invoices.invoice_issue(attempt_id=_attempt_id(first))
    assert (a.number, b.number) == (before + 1, before + 2)


def test_fifty_concurrent_paid_orders_get_fifty_consecutive_invoice_numbers(live_tenant):
    product = ProductFactory()
    orders = [paid_order(products=[product], email=f"b{i}@example.com") for i in range(50)]
    attempt_ids = [_attempt_id(order) for order in orders]
    start = _last("invoice")
    lock = threading.Lock()

    def issue():
        with lock:
            attempt_id = attempt_ids.pop()
        return invoices.invoice_issue(attempt_id=attempt_id).number

    numbers, errors = in_threads(50, issue, tenant=live_tenant)
    assert errors == []
    assert sorted(numbers) == list(range(start + 1, start + 51))
    assert _last("invoice") == start + 50
    assert Invoice.objects.count() == 50


def test_concurrent_rollbacks_leave_no_gap(live_tenant):
    """Half the issuers roll back after taking a number: the numbers kept are consecutive."""
    product = ProductFactory()
    orders = [paid_order(products=[product], email=f"r{i}@example.com") for i in range(20)]
    work = [(_attempt_id(order), i % 2 == 0) for i, order in enumerate(orders)]
    start = _last("invoice")
    lock = threading.Lock()

    class Undo(Exception):
        pass

    def issue():
        with lock:
            attempt_id, undo = work.pop()
        try:
            with transaction.atomic():
                invoice = invoices.invoice_issue(attempt_id=attempt_id)
                if undo:
                    raise Undo
                return invoice.number
        except Undo:
            return None

    numbers, errors = in_threads(20, issue, tenant=live_tenant)
    assert errors == []
    kept = sorted(n for n in numbers if n is not None)
    assert kept == list(range(start + 1, start + 11))
    assert sorted(Invoice.objects.values_list("number", flat=True)) == kept


def test_two_workers_issuing_for_one_payment_make_one_invoice(live_tenant):
    order = paid_order(products=[ProductFactory()])
    attempt_id = _attempt_id(order)
    numbers, errors = in_threads(
        8, lambda: invoices.invoice_issue(attempt_id=attempt_id).number, tenant=live_tenant
    )
    assert errors == [] and len(set(numbers)) == 1
    assert Invoice.objects.filter(order=order).count() == 1


def test_each_store_numbers_its_own_invoices(tenant, other_tenant):
    order = paid_order(products=[ProductFactory()])
    mine = invoices.invoice_issue(attempt_id=_attempt_id(order))
    with schema_context("t2"):
        theirs_order = paid_order(products=[ProductFactory()])
        theirs = invoices.invoice_issue(attempt_id=_attempt_id(theirs_order))
        assert _last("invoice") == theirs.number
    connection.set_tenant(tenant)
    assert _last("invoice") == mine.number


def test_a_refund_gets_a_credit_note_against_its_invoice_in_its_own_sequence(tenant):
    core, bump = ProductFactory(price_amount=4900), ProductFactory(price_amount=900)
    order = paid_order(products=[core, bump])
    core_line, bump_line = order.lines.order_by("pk")
    _refund(order, bump_line, 1071, "re_bump", tax=171)
    # Refunded at the gateway (no Refund row): the tax part in proportion.
    LedgerEntry.objects.create(
        kind=LedgerKind.REFUND,
        gateway_ref="re_dash",
        reference=order.reference,
        line_key=core_line.line_key,
        amount=1000,
        currency="USD",
    )
    start = _last("credit_note")
    note = invoices.credit_note_issue(refund_ref="re_bump")  # issues the invoice first
    assert invoices.credit_note_issue(refund_ref="re_bump").pk == note.pk
    invoice = Invoice.objects.get(order=order)
    assert note.invoice == invoice and note.number == start + 1
    assert note.display_number == f"CN-{start + 1:06d}"
    assert (note.net_amount, note.tax_amount, note.total_amount) == (900, 171, 1071)
    second = invoices.credit_note_issue(refund_ref="re_dash")
    assert second.number == start + 2
    # 1000 of a 5831 line with 931 tax: 159.66… → 160 tax.
    assert (second.net_amount, second.tax_amount, second.total_amount) == (840, 160, 1000)
    assert invoices.credit_note_issue(refund_ref="re_unknown") is None
    assert CreditNote.objects.count() == 2


def test_recording_a_payment_and_a_refund_queues_their_documents(tenant):
    """The hooks: a succeeded payment queues its order's documents, a refund in the ledger
    its credit note (outbox messages, committed with the change); the tasks issue them."""
    from core.models import OutboxMessage
    from payments.models import ChargeAttempt
    from storefront import tasks
    from storefront.services.orders import on_attempt_outcome, on_ledger_entry

    order = paid_order(products=[ProductFactory(license_keys=True)])
    attempt = ChargeAttempt.objects.get(reference=order.reference)
    on_attempt_outcome(attempt)
    [queued] = OutboxMessage.objects.filter(task_name="storefront.order_documents")
    assert queued.kwargs == {"order_id": order.pk} and queued.schema_name == "t1"
    assert tasks.order_documents(**queued.kwargs) == 1
    assert tasks.order_documents(**queued.kwargs) == 1  # twice: the same one invoice
    invoice = Invoice.objects.get(order=order)
    assert order.lines.get().access.license_key
    line = order.lines.get()
    _refund(order, line, line.total_amount, "re_full", tax=line.tax_amount)
    on_ledger_entry(LedgerEntry.objects.get(gateway_ref="re_full"))
    [queued] = OutboxMessage.objects.filter(task_name="storefront.credit_note_issue")
    assert queued.kwargs == {"refund_ref": "re_full"}
    assert tasks.credit_note_issue(**queued.kwargs) is True
    assert tasks.credit_note_issue(**queued.kwargs) is True
    note = CreditNote.objects.get(refund_ref="re_full")
    assert note.invoice == invoice and note.total_amount == line.total_amount


def test_the_order_page_links_its_invoices_and_credit_notes_as_pdf(tenant, client_for):
    order = paid_order(products=[ProductFactory(price_amount=4900)])
    line = order.lines.get()
    _refund(order, line, 500, "re_p", tax=81)
    note = invoices.credit_note_issue(refund_ref="re_p")
    invoice = note.invoice
    client = client_for("t1.localhost")
    page = client.get(f"/o/{order.token}/").content.decode()
    assert f"Invoice {invoice.display_number}" in page
    assert f"Credit note {note.display_number}" in page
    for url in (
        f"/o/{order.token}/invoices/{invoice.number}.pdf",
        f"/o/{order.token}/credit-notes/{note.number}.pdf",
    ):
        response = client.get(url)
        assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
        assert response.content.startswith(b"%PDF-") and b"%%EOF" in response.content[-10:]
        assert "no-store" in response["Cache-Control"]
    other = paid_order(products=[ProductFactory()])
    # Another order's token does not open this invoice; neither does another store.
    assert client.get(f"/o/{other.token}/invoices/{invoice.number}.pdf").status_code == 404
    assert (
        client_for("t2.localhost")
        .get(f"/o/{order.token}/invoices/{invoice.number}.pdf")
        .status_code
        == 404
    )


def test_the_pdf_draws_any_script_and_currency(tenant):
    from storefront.invoice_pdf import document_pdf

    product = ProductFactory(name="Fotokurs — „Licht“ 光 🙂", currency="EUR")
    order = paid_order(products=[product])
    invoice = invoices.invoice_issue(attempt_id=_attempt_id(order))
    assert document_pdf(invoice).startswith(b"%PDF-")


def test_the_receipt_links_the_order_page_lists_license_keys_and_attaches_the_invoice(tenant):
    product = ProductFactory(name="Lightroom plugin", license_keys=True)
    order = paid_order(products=[product], email="dev@example.com")
    assert receipts.receipt_send(order_id=order.pk) is True
    [message] = mail.outbox
    key = order.lines.get().access.license_key
    invoice = Invoice.objects.get(order=order)
    assert f"/o/{order.token}/" in message.body
    assert f"Lightroom plugin: {key}" in message.body
    assert invoice.display_number in message.body
    [(filename, content, mimetype)] = message.attachments
    assert filename == f"{invoice.display_number}.pdf" and mimetype == "application/pdf"
    assert content.startswith(b"%PDF-")


def test_a_refund_whose_credit_note_task_was_lost_gets_it_from_the_sweep_once(tenant, monkeypatch):
    """The credit note's message lost with a broker's data: beat's receipts sweep issues it
    after CREDIT_NOTE_OVERDUE, once, not before; a refund failing to issue is counted against
    itself and the others go on."""
    import datetime as dt

    from django.utils import timezone

    from core.models import LoopFailure

    core, bump = ProductFactory(price_amount=4900), ProductFactory(price_amount=900)
    order = paid_order(products=[core, bump])
    core_line, bump_line = order.lines.order_by("pk")
    _refund(order, bump_line, 1071, "re_lost", tax=171)
    _refund(order, core_line, 1000, "re_poison", tax=160)
    assert invoices.credit_notes_issue_overdue() == 0  # just recorded: its task may still run
    LedgerEntry.objects.filter(kind=LedgerKind.REFUND).update(
        created_at=timezone.now() - dt.timedelta(minutes=11)
    )
    real = invoices.credit_note_issue

    def one_fails(*, refund_ref):
        if refund_ref == "re_poison":
            raise RuntimeError("a bad refund")
        return real(refund_ref=refund_ref)

    monkeypatch.setattr(invoices, "credit_note_issue", one_fails)
    assert invoices.credit_notes_issue_overdue() == 1
    note = CreditNote.objects.get(refund_ref="re_lost")
    assert note.total_amount == 1071 and note.invoice.order_id == order.pk
    failure = LoopFailure.objects.get(loop=invoices.LOOP_CREDIT_NOTES)
    assert failure.record_id == "re_poison"
    monkeypatch.setattr(invoices, "credit_note_issue", real)
    assert receipts.receipts_send_overdue() == 0  # the beat task runs both sweeps
    from storefront import tasks

    assert tasks.receipts_send_overdue() == 1  # re_poison's note, now it works
    assert invoices.credit_notes_issue_overdue() == 0  # nothing left
    assert CreditNote.objects.count() == 2
