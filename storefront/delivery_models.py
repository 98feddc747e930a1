"""What a paid line gives its buyer (download count, license key) and the store's numbered
documents (invoices, credit notes) with the counter that numbers them without gaps."""

from __future__ import annotations

from django.db import models

from core.money import Money


class LineAccess(models.Model):
    """One per paid line that has something to deliver: its downloads so far, counted against
    the product's `download_limit` with one conditional UPDATE, and its license key. Whether the
    line may still be used is derived from the money (storefront.services.delivery), never
    stored here."""

    line = models.OneToOneField(
        "storefront.OrderLine", on_delete=models.CASCADE, related_name="access"
    )
    downloads = models.PositiveIntegerField(default=0)
    last_download_at = models.DateTimeField(null=True, blank=True)
    # Unique within the store (the schema); random enough to be unique across stores too, but
    # a key is only ever looked up in the store whose API key asks.
    license_key = models.CharField(max_length=40, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "line access"
        verbose_name_plural = "line access (downloads and license keys)"

    def __str__(self) -> str:
        return f"access for line {self.line_id}"


class DocumentKind(models.TextChoices):
    INVOICE = "invoice", "Invoice"
    CREDIT_NOTE = "credit_note", "Credit note"


class DocumentCounter(models.Model):
    """The store's last issued number per document kind. The row is locked (SELECT … FOR
    UPDATE) by the transaction that writes the document, so numbers are consecutive and a
    rolled-back issue gives its number back. Each store is a schema: one sequence per store."""

    kind = models.CharField(max_length=16, choices=DocumentKind.choices, primary_key=True)
    last_number = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "document counter"

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.last_number}"


class _Document(models.Model):
    """Frozen at issue: what the buyer was charged (or given back), who sold and who bought.
    Never edited; the PDF is drawn from these fields."""

    number = models.PositiveIntegerField(unique=True)
    issued_at = models.DateTimeField()
    currency = models.CharField(max_length=3)
    net_amount = models.IntegerField()  # minor units
    tax_amount = models.IntegerField()
    total_amount = models.IntegerField()
    # [{"description", "kind", "line_key", "net", "tax", "total", "tax_rate", "tax_inclusive"}]
    lines = models.JSONField(default=list)
    seller = models.JSONField(default=dict)  # name, address, tax_id, email, domain
    buyer = models.JSONField(default=dict)  # email, country, region, vat_id

    PREFIX = ""

    class Meta:
        abstract = True
        ordering = ["number"]

    def __str__(self) -> str:
        return self.display_number

    @property
    def display_number(self) -> str:
        return f"{self.PREFIX}{self.number:06d}"

    @property
    def total(self) -> Money:
        return Money(self.total_amount, self.currency)

    @property
    def tax(self) -> Money:
        return Money(self.tax_amount, self.currency)

    @property
    def net(self) -> Money:
        return Money(self.net_amount, self.currency)


class Invoice(_Document):
    """One per successful payment of an order: the checkout's (core + bump) and each one-click
    charge after it (upsell, downsell, cross-sell), each listing the lines it paid for."""

    PREFIX = "INV-"

    order = models.ForeignKey("storefront.Order", on_delete=models.PROTECT, related_name="invoices")
    attempt = models.OneToOneField(
        "payments.ChargeAttempt", on_delete=models.PROTECT, related_name="invoice"
    )
    # When the invoice was claimed for an email (the receipt, or a one-click charge's own
    # confirmation): each invoice is emailed once (storefront.services.receipts).
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta(_Document.Meta):
        verbose_name = "invoice"


class CreditNote(_Document):
    """One per gateway refund (re_…), against the invoice of the payment it refunded. Numbered
    in its own sequence (CN-…)."""

    PREFIX = "CN-"

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    refund_ref = models.CharField(max_length=100, unique=True)

    class Meta(_Document.Meta):
        verbose_name = "credit note"
