"""Paid orders with their checkout payment recorded (a succeeded primary attempt, its ledger
charges), written straight to the database, for the delivery, order-page and invoice tests."""

from __future__ import annotations

import secrets

from django.core.files.base import ContentFile
from django.utils import timezone

from core import orderkeys
from payments.models import AttemptStatus, ChargeAttempt, LedgerEntry, LedgerKind
from storefront.models import Customer, Order, OrderLine, OrderStatus, Product
from tests.factories import ProductFactory

FILE_BYTES = b"%PDF-1.4 the photo course workbook\n" * 64


def product_with_file(*, name: str = "Photo course", content: bytes = FILE_BYTES, **fields):
    """An active product whose deliverable is an uploaded file (in the private root)."""
    product = ProductFactory(name=name, deliverable_url="", **fields)
    product.deliverable_file.save(f"{product.slug}.pdf", ContentFile(content), save=True)
    return product


def file_remove(product: Product) -> None:
    if product.deliverable_file:
        product.deliverable_file.storage.delete(product.deliverable_file.name)


def paid_order(
    *,
    products: list[Product],
    email: str = "buyer@example.com",
    country: str = "DE",
    tax_rate: str = "19.000",
    record_charge: bool = True,
) -> Order:
    """An order paid at checkout: one core line (then bump lines) at 19% tax on top, a
    succeeded primary attempt allocating each line and one ledger charge per line."""
    customer, _ = Customer.objects.get_or_create(email=email)
    order = Order.objects.create(
        token=secrets.token_hex(16),
        customer=customer,
        status=OrderStatus.PAID,
        currency="USD",
        country=country,
        paid_at=timezone.now(),
    )
    lines = []
    for i, product in enumerate(products):
        net = product.price_amount
        tax = net * 19 // 100 if tax_rate != "0" else 0
        lines.append(
            OrderLine.objects.create(
                order=order,
                kind="core" if i == 0 else "bump",
                product=product,
                description=product.name,
                net_amount=net,
                tax_amount=tax,
                total_amount=net + tax,
                currency="USD",
                tax_rate=tax_rate,
                tax_inclusive=False,
                tax_country=country,
            )
        )
    attempt = ChargeAttempt.objects.create(
        purpose=orderkeys.order_purpose(order.pk, orderkeys.PRIMARY),
        idempotency_key=f"test-{order.token}",
        reference=order.reference,
        amount=sum(line.total_amount for line in lines),
        currency="USD",
        customer_ref="cus_test",
        payment_method_ref="pm_test",
        allocation={line.line_key: line.total_amount for line in lines},
        status=AttemptStatus.SUCCEEDED,
        gateway_ref=f"pi_{order.token[:12]}",
        finished_at=timezone.now(),
    )
    if record_charge:
        for line in lines:
            LedgerEntry.objects.create(
                kind=LedgerKind.CHARGE,
                gateway_ref=attempt.gateway_ref,
                reference=order.reference,
                line_key=line.line_key,
                amount=line.total_amount,
                currency="USD",
                attempt=attempt,
            )
    return order
