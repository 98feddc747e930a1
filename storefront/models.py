"""The creator's catalog: products on an ordered ladder (entry → companion → premium)."""

from django.db import models

from core import orderkeys
from core.fixedsql import FixedQuery
from core.money import Money
from storefront.storage import deliverable_storage


class Product(models.Model):
    class Tier(models.TextChoices):
        ENTRY = "entry", "Entry"
        COMPANION = "companion", "Companion"
        PREMIUM = "premium", "Premium"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"

    slug = models.SlugField(max_length=80, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    tier = models.CharField(max_length=16, choices=Tier.choices, default=Tier.ENTRY)
    # Position on the creator's ladder: lower rungs first. Offers climb the ladder.
    ladder_position = models.PositiveIntegerField(default=0)
    # Money columns hold minor units; the admin shows and takes major units (core.money_forms).
    price_amount = models.PositiveIntegerField(
        verbose_name="price", help_text="What buyers pay, in the product's currency."
    )
    currency = models.CharField(max_length=3, default="USD")
    anchor_amount = models.PositiveIntegerField(
        null=True,
        blank=True,
        verbose_name="was price",
        help_text="Optional: a former price shown struck through, in the same currency.",
    )
    refund_terms = models.CharField(
        max_length=300,
        default="Refundable within 30 days of purchase.",
        help_text="Shown before the buyer pays, on the receipt and the thank-you page.",
    )
    deliverable_url = models.URLField(
        blank=True,
        help_text="An external link handed out after the same checks as a file. The other "
        "site must protect it itself; prefer uploading the file.",
    )
    # Kept in a private root (storefront/storage.py), never under a public media URL.
    deliverable_file = models.FileField(
        upload_to="deliverables/", blank=True, storage=deliverable_storage
    )
    download_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Downloads allowed per purchase; empty for no limit.",
    )
    # db_default too: rows inserted by raw SQL (clones, analytics fixtures) need no value.
    license_keys = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Give each purchase its own license key (on the order page and the receipt; "
        "partners verify it through the API).",
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.DRAFT)
    # What the product page says besides the description (one item per line), and an optional
    # link to a short preview video (opened on the video site: no third-party frame here).
    # Database defaults too: a process still on the previous release (mid-deploy) and raw
    # inserts that do not name these columns still write valid rows.
    benefits = models.TextField(
        blank=True, db_default="", help_text="What the buyer gets out of it, one per line."
    )
    included = models.TextField(
        blank=True, db_default="", help_text="What is in the package, one item per line."
    )
    video_url = models.URLField(
        blank=True, db_default="", help_text="Optional link to a short preview video."
    )
    # What the hosted pages show of the ProductImage and Testimonial rows, copied here by
    # services.showcase.product_showcase_refresh whenever they change (the admin's only write
    # path), so a page shows pictures and quotes without another query.
    showcase = models.JSONField(
        default=dict, db_default=models.Value({}, models.JSONField()), blank=True, editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["ladder_position", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(currency__regex=r"^[A-Z]{3}$"), name="product_currency_iso"
            ),
            models.CheckConstraint(
                condition=models.Q(anchor_amount__isnull=True)
                | models.Q(anchor_amount__gt=models.F("price_amount")),
                name="product_anchor_above_price",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def price(self) -> Money:
        return Money(self.price_amount, self.currency)

    @property
    def anchor(self) -> Money | None:
        return Money(self.anchor_amount, self.currency) if self.anchor_amount else None

    @property
    def pictures(self) -> list:
        from storefront.media import Picture

        return [
            Picture.from_record(item["record"], alt=item["alt"])
            for item in (self.showcase or {}).get("images", [])
        ]

    @property
    def lead_picture(self):
        pictures = self.pictures
        return pictures[0] if pictures else None

    @property
    def thumb_picture(self):
        from storefront.media import Picture

        images = (self.showcase or {}).get("images", [])
        if not images:
            return None
        return Picture.from_record(images[0]["record"], alt=images[0]["alt"], display_width=96)

    @property
    def quotes(self) -> list[dict]:
        return (self.showcase or {}).get("testimonials", [])

    @property
    def benefit_list(self) -> list[str]:
        return [line.strip() for line in self.benefits.splitlines() if line.strip()]

    @property
    def included_list(self) -> list[str]:
        return [line.strip() for line in self.included.splitlines() if line.strip()]


class ProductImage(models.Model):
    """A picture of a product, stored as resized copies (storefront.media); the first by
    position is the one checkout and the upsell page show."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="images")
    position = models.PositiveSmallIntegerField(default=0)
    # Required: a picture a screen-reader user cannot hear about is not shown to anyone.
    alt = models.CharField(
        max_length=200, help_text="What the picture shows, for people who cannot see it."
    )
    variants = models.JSONField(default=dict)  # storefront.media.image_store's record

    class Meta:
        ordering = ["position", "pk"]
        constraints = [
            models.CheckConstraint(condition=~models.Q(alt=""), name="productimage_alt_required")
        ]

    def __str__(self) -> str:
        return self.alt

    def picture(self, display_width: int = 0):
        from storefront.media import Picture

        return Picture.from_record(self.variants, alt=self.alt, display_width=display_width)


class Testimonial(models.Model):
    """Words a real buyer said, entered by the creator (shown as written, with the name)."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="testimonials")
    position = models.PositiveSmallIntegerField(default=0)
    quote = models.TextField(max_length=600)
    author = models.CharField(max_length=100, help_text="Who said it, e.g. “Ana, a student”.")

    class Meta:
        ordering = ["position", "pk"]

    def __str__(self) -> str:
        return f"{self.author}: {self.quote[:40]}"


class StoreSettings(models.Model):
    """One row per store (tenant): how prices and receipts behave."""

    prices_include_tax = models.BooleanField(
        default=False, help_text="Prices already include tax (common in the EU and UK)."
    )
    statement_descriptor = models.CharField(max_length=22, default="CREATOR STORE")
    support_email = models.EmailField(
        blank=True, help_text="Buyers' replies to receipts and follow-ups go here (Reply-To)."
    )
    tax_country = models.CharField(
        max_length=2,
        blank=True,
        help_text="Where the store is registered for VAT (ISO code, e.g. IE); empty if outside "
        "the EU. A business buyer with a valid VAT ID from another EU country pays no VAT "
        "(reverse charge).",
    )
    eu_vat_evidence = models.BooleanField(
        default=False,
        help_text="The store charges EU VAT on digital sales (OSS): when the card's country "
        "and the declared country disagree, the buyer confirms their country before paying.",
    )
    sender_name = models.CharField(
        max_length=80,
        blank=True,
        help_text="The From name on the store's emails; empty means the store's name.",
    )
    # The seller on invoices and credit notes (frozen into each document when it is issued).
    seller_name = models.CharField(
        max_length=200, blank=True, help_text="Legal name on invoices; the store's name if empty."
    )
    seller_address = models.TextField(blank=True, help_text="Postal address on invoices.")
    seller_tax_id = models.CharField(
        max_length=40, blank=True, verbose_name="seller VAT / tax ID", help_text="On invoices."
    )
    # Abandoned-checkout reminders: to buyers who gave their email at checkout, agreed to a
    # reminder there, and did not pay (storefront.services.followups.recovery).
    recovery_enabled = models.BooleanField(
        default=True,
        verbose_name="send abandoned-checkout reminders",
        help_text="Only to buyers who ticked the reminder box at checkout.",
    )
    recovery_delays_hours = models.JSONField(
        default=list,
        blank=True,
        verbose_name="reminder delays (hours)",
        help_text="Hours after the checkout for reminder 1 and 2, e.g. [1, 24] (the default).",
    )
    recovery_coupon = models.ForeignKey(
        "offers.Coupon",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name="reminder coupon",
        help_text="Optional: a coupon the reminder's link applies at checkout.",
    )
    # Minor units of the order's currency. Staff without the "refund above the limit"
    # permission (the support role, storefront/team.py) may refund an order up to this much
    # in all; a refund that would take the order past it is refused with the reason.
    support_refund_limit = models.PositiveIntegerField(
        default=5000,
        help_text="Most the support role may refund on one order in all (default 50.00).",
    )

    class Meta:
        verbose_name = "store settings"
        verbose_name_plural = "store settings"

    def __str__(self) -> str:
        return "Store settings"

    @classmethod
    def current(cls) -> "StoreSettings":
        """The store's row: made by migration 0005 (and so in every cloned schema), read-only
        on the request path; created here only if someone deleted it."""
        rows = _STORE_SETTINGS.all()
        if rows:
            return rows[0]
        settings, _ = cls.objects.get_or_create(pk=1)
        return settings


_STORE_SETTINGS = FixedQuery(StoreSettings, lambda: StoreSettings.objects.filter(pk=1))


class TaxRate(models.Model):
    """A creator-configured rate for buyers in a country (and optionally a region)."""

    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2, e.g. DE")
    region = models.CharField(max_length=10, blank=True, help_text="e.g. CA for California")
    rate = models.DecimalField(max_digits=6, decimal_places=3, help_text="Percent, e.g. 19.000")
    name = models.CharField(max_length=40, default="VAT")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["country", "region"], name="taxrate_unique_place"),
            models.CheckConstraint(
                condition=models.Q(rate__gte=0, rate__lt=100), name="taxrate_in_range"
            ),
        ]
        ordering = ["country", "region"]

    def __str__(self) -> str:
        where = f"{self.country}-{self.region}" if self.region else self.country
        return f"{self.name} {self.rate}% ({where})"


class Customer(models.Model):
    """A buyer, identified by email."""

    email = models.EmailField(unique=True)
    gateway_customer = models.ForeignKey(
        "payments.GatewayCustomer", null=True, blank=True, on_delete=models.SET_NULL
    )
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    # Set by an erasure (storefront.privacy): `email` is then a pseudonym at erased.invalid.
    erased_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.email


class OrderStatus(models.TextChoices):
    PENDING = "pending", "Pending payment"
    PAID = "paid", "Paid"
    PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
    REFUNDED = "refunded", "Refunded"
    FAILED = "failed", "Payment failed"


# The buyer owns what the order bought: paid, and not refunded in full. One definition for
# ownership checks (offers, follow-ups), downloads, receipts and the admin's refundable orders.
OWNED_ORDER_STATUSES: tuple[str, ...] = (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED)


# The order status machine, written once. `order_status_move` is the only writer.
ORDER_TRANSITIONS: dict[str, set[str]] = {
    OrderStatus.PENDING: {OrderStatus.PAID, OrderStatus.FAILED},
    OrderStatus.FAILED: {OrderStatus.PAID},  # a late success re-read from the gateway
    OrderStatus.PAID: {OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED},
    OrderStatus.PARTIALLY_REFUNDED: {OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED},
    OrderStatus.REFUNDED: set(),
}


class Order(models.Model):
    token = models.CharField(max_length=32, unique=True)  # public id used in URLs
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders")
    status = models.CharField(
        max_length=20, choices=OrderStatus.choices, default=OrderStatus.PENDING
    )
    currency = models.CharField(max_length=3)
    # Jurisdiction evidence for tax, reused for post-purchase lines and refunds.
    country = models.CharField(max_length=2)
    region = models.CharField(max_length=10, blank=True)
    tax_evidence = models.JSONField(default=dict, blank=True)
    # A business buyer's EU VAT ID, as checked (storefront.tax.vat); reverse_charge when VIES
    # confirmed it and the buyer is in another EU country than the store: no VAT charged, and
    # the invoice states the reverse charge (storefront.tax.providers.REVERSE_CHARGE_NOTE).
    vat_id = models.CharField(max_length=20, blank=True)
    reverse_charge = models.BooleanField(default=False)
    # Attribution carried from the first page view.
    visitor_id = models.CharField(max_length=64, blank=True)
    utm_source = models.CharField(max_length=100, blank=True)
    utm_medium = models.CharField(max_length=100, blank=True)
    utm_campaign = models.CharField(max_length=100, blank=True)
    referrer = models.CharField(max_length=500, blank=True)
    # The experiment variant this buyer saw (if any), for analytics.
    variant = models.CharField(max_length=40, blank=True)
    setup_ref = models.CharField(max_length=100, blank=True)  # the gateway SetupIntent
    card_saved = models.BooleanField(default=False)  # the buyer consented to the vault
    # The buyer ticked "remind me" at checkout (the consent text is checkout.REMINDER_TEXT).
    reminder_consent = models.BooleanField(default=False)
    # The coupon applied (as typed, canonical case); the discount is on each line.
    coupon_code = models.CharField(max_length=40, blank=True)
    # The abandoned checkout whose reminder brought the buyer back to this one.
    recovered_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="recoveries"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    receipt_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "created_at"], name="order_status_idx"),
            # Paid orders whose receipt is still unsent: few, read by the receipts' sweep.
            models.Index(
                fields=["paid_at"],
                name="order_receipt_unsent_idx",
                condition=models.Q(receipt_sent_at__isnull=True, paid_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"Order {self.token}"

    @property
    def reference(self) -> str:
        """How payments and analytics refer to this order."""
        return orderkeys.order_reference(self.pk)


class LineKind(models.TextChoices):
    CORE = "core", "Core product"
    BUMP = "bump", "Order bump"
    UPSELL = "upsell", "Upsell"
    DOWNSELL = "downsell", "Downsell"
    CROSS_SELL = "cross_sell", "Cross-sell"


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    kind = models.CharField(max_length=12, choices=LineKind.choices)
    product = models.ForeignKey(Product, on_delete=models.PROTECT)
    offer = models.ForeignKey("offers.Offer", null=True, blank=True, on_delete=models.PROTECT)
    description = models.CharField(max_length=200)
    # All minor units in the order's currency. net + tax = total, always: the amounts after
    # the coupon's discount, which is kept here (in the price's terms: tax included when the
    # store's prices include it) so a refund of the line is of what was actually paid.
    discount_amount = models.PositiveIntegerField(default=0)
    net_amount = models.PositiveIntegerField()
    tax_amount = models.PositiveIntegerField()
    total_amount = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    tax_rate = models.DecimalField(max_digits=6, decimal_places=3)
    tax_inclusive = models.BooleanField()
    tax_country = models.CharField(max_length=2)
    tax_region = models.CharField(max_length=10, blank=True)
    reverse_charge = models.BooleanField(default=False)  # the order's, when the line was made
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            # Caps, held by the database whatever happens concurrently.
            models.UniqueConstraint(
                fields=["order", "kind"],
                condition=models.Q(kind__in=["core", "bump"]),
                name="orderline_one_core_one_bump",
            ),
            # The downsell is shown only when the upsell was declined or failed: at most one
            # post-purchase line per order.
            models.UniqueConstraint(
                fields=["order"],
                condition=models.Q(kind__in=["upsell", "downsell"]),
                name="orderline_one_post_purchase",
            ),
            models.CheckConstraint(
                condition=models.Q(total_amount=models.F("net_amount") + models.F("tax_amount")),
                name="orderline_total_is_net_plus_tax",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.description}"

    @property
    def line_key(self) -> str:
        # Post-purchase and cross-sell lines are charged before they exist, so they are keyed
        # by order ("<kind>:<order id>"); the rest by pk. The rule is core/orderkeys.py's.
        return orderkeys.line_key(kind=self.kind, line_id=self.pk, order_id=self.order_id)

    @property
    def total(self) -> Money:
        return Money(self.total_amount, self.currency)

    @property
    def tax(self) -> Money:
        return Money(self.tax_amount, self.currency)

    @property
    def net(self) -> Money:
        return Money(self.net_amount, self.currency)


class FollowUpStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    SENDING = "sending", "Claimed by a worker, being sent"
    SENT = "sent", "Sent"
    SKIPPED = "skipped", "Skipped (not sent)"


class EmailSequence(models.TextChoices):
    CROSS_SELL = "cross_sell", "Follow-up cross-sell"
    RECOVERY = "recovery", "Abandoned-checkout reminder"


class FollowUpSend(models.Model):
    """One follow-up email for one customer and step (1 or 2): a cross-sell for an offer, or
    an abandoned-checkout reminder for a product (`sequence`).

    The row is the cap: unique (customer, offer, step), so a buyer gets at most two emails per
    offer sequence whatever orders, tasks or workers run concurrently. It exists before the
    email is sent; a worker claims it (SCHEDULED → SENDING) with one conditional UPDATE and
    only the claimer sends. A claim left SENDING longer than the stale period (a worker
    killed mid-send) is claimed again by the periodic job: delivery is at-least-once, with a
    stable Message-ID so a receiver can collapse the rare duplicate (see services.followups).
    """

    sequence = models.CharField(
        max_length=10, choices=EmailSequence.choices, default=EmailSequence.CROSS_SELL
    )
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="followups")
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="followups")
    # A cross-sell's offer; empty for a reminder.
    offer = models.ForeignKey(
        "offers.Offer", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # A reminder's product (the abandoned checkout's core product); empty for a cross-sell.
    product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    step = models.PositiveSmallIntegerField()
    due_at = models.DateTimeField()
    status = models.CharField(
        max_length=10, choices=FollowUpStatus.choices, default=FollowUpStatus.SCHEDULED
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    claims = models.PositiveIntegerField(default=0)  # how many times a worker claimed it
    sent_at = models.DateTimeField(null=True, blank=True)
    skipped_reason = models.CharField(max_length=40, blank=True)
    link_kind = models.CharField(max_length=10, blank=True)  # "accept" or "checkout"
    nonce = models.CharField(max_length=32, unique=True)  # signed into the email's accept link
    # Set when the buyer accepts from the email: the price and tax they saw, frozen.
    accepted_at = models.DateTimeField(null=True, blank=True)
    net_amount = models.PositiveIntegerField(null=True, blank=True)
    tax_amount = models.PositiveIntegerField(null=True, blank=True)
    total_amount = models.PositiveIntegerField(null=True, blank=True)
    tax_rate = models.DecimalField(max_digits=6, decimal_places=3, null=True, blank=True)
    tax_inclusive = models.BooleanField(null=True, blank=True)
    attempt = models.OneToOneField(
        "payments.ChargeAttempt",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="followup_send",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "follow-up email"
        verbose_name_plural = "follow-up emails"
        ordering = ["due_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "offer", "step"],
                name="followupsend_one_per_customer_offer_step",
            ),
            # The same cap for reminders: at most two per buyer and product, however many
            # checkouts they leave (a row per step, refused by the database past that).
            models.UniqueConstraint(
                fields=["customer", "product", "step"],
                condition=models.Q(sequence="recovery"),
                name="followupsend_one_reminder_per_customer_product_step",
            ),
            models.CheckConstraint(
                condition=models.Q(sequence="cross_sell", offer__isnull=False)
                | models.Q(sequence="recovery", product__isnull=False, offer__isnull=True),
                name="followupsend_sequence_has_its_subject",
            ),
            models.CheckConstraint(
                condition=models.Q(step__in=[1, 2]), name="followupsend_step_1_or_2"
            ),
            models.CheckConstraint(
                condition=~models.Q(status="sent") | models.Q(sent_at__isnull=False),
                name="followupsend_sent_has_time",
            ),
        ]
        indexes = [models.Index(fields=["status", "due_at"], name="followupsend_due_idx")]

    def __str__(self) -> str:
        subject = self.offer_id if self.sequence == EmailSequence.CROSS_SELL else "reminder"
        return f"follow-up {self.step}/{subject} to {self.customer_id} ({self.status})"


# Kept in their own modules (this one stays under 600 lines); imported here so Django finds
# them and `from storefront.models import …` keeps working.
from storefront.brand_models import StoreBrand  # noqa: E402, F401
from storefront.delivery_models import (  # noqa: E402, F401
    CreditNote,
    DocumentCounter,
    Invoice,
    LineAccess,
)
from storefront.privacy_models import (  # noqa: E402, F401
    PrivacyRequest,
    PrivacyRequestChannel,
    PrivacyRequestKind,
    PrivacyRequestState,
)
from storefront.team_models import StaffInvitation, StaffRole  # noqa: E402, F401
