"""Through the real path: a checkout paid at the gateway (localstripe), the order page's
download, a refund through the partner API (the one refund service), then the same link and
the order page; the refund's credit note against the payment's invoice."""

import re

import pytest
from django.core.files.base import ContentFile

from core.models import OutboxMessage
from partners.models import ApiKey
from partners.services import api_key_create
from storefront import tasks
from storefront.models import CreditNote, Invoice
from tests.api.conftest import paid_order
from tests.delivery_support import FILE_BYTES, file_remove

pytestmark = pytest.mark.gateway


def _run(task_name: str) -> None:
    """Run the queued tasks of `task_name` as a worker would (the outbox is not drained in
    tests)."""
    for message in OutboxMessage.objects.filter(task_name=task_name):
        getattr(tasks, task_name.split(".", 1)[1])(**message.kwargs)


def test_a_refund_through_the_api_ends_the_download_and_issues_a_credit_note(
    tenant, client_for, stripe_api_base
):
    write_key = api_key_create(name="partner", scope=ApiKey.Scope.WRITE).token
    order = paid_order()  # 4900 + 19% VAT, paid through the hosted checkout
    line = order.lines.select_related("product").get()
    product = line.product
    product.deliverable_url = ""
    product.deliverable_file.save("course.pdf", ContentFile(FILE_BYTES), save=True)
    try:
        _run("storefront.order_documents")
        invoice = Invoice.objects.get(order=order)
        assert invoice.total_amount == line.total_amount and invoice.tax_amount == line.tax_amount

        client = client_for("t1.localhost")
        page = client.get(f"/o/{order.token}/").content.decode()
        href = re.search(r'href="(/d/[^"]+)" class="download"', page).group(1)
        assert b"".join(client.get(href).streaming_content) == FILE_BYTES

        refunded = client_for("t1.localhost").post(
            f"/api/v1/orders/{order.pk}/refunds/",
            {"line_id": line.pk, "reason": "asked"},
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY="e2e-refund-1",
            HTTP_AUTHORIZATION=f"Bearer {write_key}",
        )
        assert refunded.status_code == 201, refunded.content
        order.refresh_from_db()
        assert order.status == "refunded"

        gone = client.get(href)
        assert gone.status_code == 410 and FILE_BYTES not in gone.content
        page = client.get(f"/o/{order.token}/").content.decode()
        assert "/d/" not in page and "refunded in full" in page

        _run("storefront.credit_note_issue")
        note = CreditNote.objects.get(invoice=invoice)
        assert note.total_amount == line.total_amount and note.tax_amount == line.tax_amount
        assert (
            f"Credit note {note.display_number}"
            in client.get(f"/o/{order.token}/").content.decode()
        )
    finally:
        file_remove(product)
