"""A one-click charge after the checkout (here an upsell, over the local Stripe) gets its own
receipt with its invoice attached, through a real local SMTP server; each invoice is emailed
once, whichever email goes out first and however often the tasks run."""

import datetime as dt

import pytest
from django.utils import timezone

from core.models import OutboxMessage
from payments.models import ChargeAttempt
from storefront import tasks
from storefront.models import Invoice, Order
from storefront.services import receipts
from tests.followups.smtp import text_of
from tests.upsell.helpers import buy, make_catalog, offer_token

pytestmark = pytest.mark.gateway
HOST = "t1.localhost"


def _run(task_name: str) -> list:
    """Run the queued tasks of `task_name` as a worker would, twice (a redelivery)."""
    results = []
    for message in OutboxMessage.objects.filter(task_name=task_name).order_by("pk"):
        for _ in range(2):
            results.append(getattr(tasks, task_name.split(".", 1)[1])(**message.kwargs))
    return results


def _pdfs(message) -> list[str]:
    return [
        part.get_filename()
        for part in message.walk()
        if part.get_content_type() == "application/pdf"
    ]


def _accept_upsell(client, order) -> None:
    token = offer_token(client, order)
    assert client.post(f"/o/{order.token}/offer/accept", {"token": token}).status_code == 303


def test_an_upsell_gets_its_own_receipt_with_its_invoice_once(tenant, client_for, smtp_mail):
    make_catalog()
    client = client_for(HOST)
    order = buy(client)
    assert _run("storefront.send_receipt") == [True, False]
    _accept_upsell(client, order)
    assert _run("storefront.send_charge_receipt") == [True, False]

    receipt, charge_receipt = smtp_mail.messages
    checkout_invoice, upsell_invoice = Invoice.objects.filter(order=order).order_by("number")
    assert _pdfs(receipt) == [f"{checkout_invoice.display_number}.pdf"]
    assert _pdfs(charge_receipt) == [f"{upsell_invoice.display_number}.pdf"]
    assert upsell_invoice.lines[0]["kind"] == "upsell" and upsell_invoice.total_amount == 1428
    body = text_of(charge_receipt)
    assert "Editing masterclass" in body and "$14.28" in body
    assert upsell_invoice.display_number in body and f"/o/{order.token}/" in body
    assert charge_receipt["To"] == receipt["To"]
    assert Invoice.objects.filter(emailed_at__isnull=True).count() == 0


def test_a_receipt_sent_after_the_upsell_carries_both_invoices_and_no_second_email_goes(
    tenant, client_for, smtp_mail
):
    make_catalog()
    client = client_for(HOST)
    order = buy(client)
    _accept_upsell(client, order)
    assert _run("storefront.send_receipt") == [True, False]
    assert _run("storefront.send_charge_receipt") == [False, False]
    [receipt] = smtp_mail.messages
    numbers = [i.display_number for i in Invoice.objects.filter(order=order).order_by("number")]
    assert len(numbers) == 2 and _pdfs(receipt) == [f"{n}.pdf" for n in numbers]


def test_a_failed_send_hands_the_invoice_back_for_the_retry(
    tenant, client_for, smtp_mail, settings
):
    make_catalog()
    client = client_for(HOST)
    order = buy(client)
    _run("storefront.send_receipt")
    _accept_upsell(client, order)
    [queued] = OutboxMessage.objects.filter(task_name="storefront.send_charge_receipt")
    smtp_mail.messages.clear()
    port = settings.EMAIL_PORT
    settings.EMAIL_PORT = 1  # nothing listens there: the send fails
    with pytest.raises(OSError):
        tasks.send_charge_receipt(**queued.kwargs)
    settings.EMAIL_PORT = port
    assert Invoice.objects.filter(emailed_at__isnull=True).count() == 1
    assert tasks.send_charge_receipt(**queued.kwargs) is True
    assert len(smtp_mail.messages) == 1


def test_an_upsell_receipt_whose_task_was_lost_is_sent_once_by_the_sweep(
    tenant, client_for, smtp_mail
):
    make_catalog()
    client = client_for(HOST)
    order = buy(client)
    assert _run("storefront.send_receipt") == [True, False]
    _accept_upsell(client, order)
    OutboxMessage.objects.filter(task_name="storefront.send_charge_receipt").delete()  # lost
    upsell = ChargeAttempt.objects.filter(purpose=f"order:{order.pk}:upsell")

    assert receipts.receipts_send_overdue() == 0  # charged just now: its task may be on its way
    ago = timezone.now() - receipts.RECEIPT_OVERDUE - dt.timedelta(minutes=1)
    upsell.update(finished_at=ago)
    Order.objects.filter(pk=order.pk).update(paid_at=ago)  # its own receipt went out already
    assert receipts.receipts_send_overdue() == 1
    assert receipts.receipts_send_overdue() == 0

    receipt, charge_receipt = smtp_mail.messages
    upsell_invoice = Invoice.objects.get(attempt=upsell.get())
    assert _pdfs(charge_receipt) == [f"{upsell_invoice.display_number}.pdf"]
    assert upsell_invoice.emailed_at is not None
    assert _run("storefront.send_charge_receipt") == []  # nothing queued, nothing more sent
