"""Offer rules: bumps, post-purchase upsells and downsells, follow-up cross-sells.

Products are referred to by model label, so offers never import storefront.
"""

import datetime as dt
from decimal import Decimal

from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import DateTimeRangeField, RangeOperators
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Upper

from core.money import Money


class OfferKind(models.TextChoices):
    BUMP = "bump", "Order bump (checkbox at checkout)"
    UPSELL = "upsell", "One-click upsell (after checkout)"
    DOWNSELL = "downsell", "Downsell (if the upsell is declined or fails)"
    CROSS_SELL = "cross_sell", "Follow-up cross-sell (email)"


class Offer(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"

    kind = models.CharField(max_length=12, choices=OfferKind.choices)
    # The core product whose purchase triggers this offer.
    trigger_product = models.ForeignKey(
        "storefront.Product", on_delete=models.CASCADE, related_name="offers_triggered"
    )
    # What the buyer gets if they take it.
    product = models.ForeignKey(
        "storefront.Product", on_delete=models.CASCADE, related_name="offered_in"
    )
    # A downsell hangs off its upsell.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="downsells"
    )
    # Minor units; the admin shows and takes major units (core.money_forms).
    price_amount = models.PositiveIntegerField(
        verbose_name="price", help_text="What the buyer pays for the offer, in its currency."
    )
    currency = models.CharField(max_length=3, default="USD")
    headline = models.CharField(max_length=200)
    benefit = models.CharField(max_length=300, help_text="The immediate benefit, in one line.")
    refund_terms = models.CharField(max_length=300, default="Refundable within 30 days.")
    testimonial = models.TextField(blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    paused_reason = models.CharField(max_length=300, blank=True)
    # Creators may price above 50% of the cart only by saying so explicitly.
    allow_high_price = models.BooleanField(default=False)
    # Follow-up emails (cross-sells): hours after purchase for step 1 and step 2.
    followup_delays_hours = models.JSONField(default=list, blank=True)
    # Per-customer cap for post-purchase upsells: a buyer is shown at most one upsell per this
    # many hours, whatever they buy (0 = no cap). Held by an exclusion constraint on
    # OfferDecision, so two concurrent orders by one buyer cannot both get one.
    customer_cap_hours = models.PositiveIntegerField(
        default=24, help_text="Show a buyer at most one upsell per this many hours (0: no limit)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # One live bump and one live upsell per core product (caps, held by the database).
            models.UniqueConstraint(
                fields=["trigger_product", "kind"],
                condition=Q(status="active", kind__in=["bump", "upsell"]),
                name="offer_one_active_bump_or_upsell_per_product",
            ),
            models.UniqueConstraint(
                fields=["parent"],
                condition=Q(kind="downsell"),
                name="offer_one_downsell_per_upsell",
            ),
            models.CheckConstraint(
                condition=Q(kind="downsell", parent__isnull=False) | ~Q(kind="downsell"),
                name="offer_downsell_has_parent",
            ),
            models.CheckConstraint(condition=Q(price_amount__gt=0), name="offer_price_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.headline}"

    @property
    def price(self) -> Money:
        return Money(self.price_amount, self.currency)

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @property
    def customer_cap(self) -> dt.timedelta | None:
        return dt.timedelta(hours=self.customer_cap_hours) if self.customer_cap_hours else None

    def clean(self) -> None:
        """What the admin form refuses: a downsell without its upsell, foreign currencies,
        and a price above 50% of the cart unless the creator ticks `allow_high_price`.
        Prices outside the 10–30% sweet spot are allowed but leave `price_warnings` for the
        form to show."""
        from offers.services import offer_price_check  # services import this module

        self.price_warnings: list[str] = []
        errors: dict[str, list[str]] = {}
        if self.kind == OfferKind.DOWNSELL:
            parent = self.parent if self.parent_id else None
            if parent is None or parent.kind != OfferKind.UPSELL:
                errors.setdefault("parent", []).append("A downsell hangs off an upsell: choose it.")
            elif parent.trigger_product_id != self.trigger_product_id:
                errors.setdefault("parent", []).append(
                    "The downsell must follow an upsell for the same core product."
                )
            elif self.price_amount and self.price_amount >= parent.price_amount:
                errors.setdefault("price_amount", []).append(
                    "A downsell should cost less than the upsell it replaces."
                )
        elif self.parent_id:
            errors.setdefault("parent", []).append("Only a downsell has a parent offer.")
        trigger = self.trigger_product if self.trigger_product_id else None
        if trigger is not None and self.currency != trigger.currency:
            errors.setdefault("currency", []).append(
                f"The offer must be priced in {trigger.currency}, like the core product."
            )
        elif trigger is not None and self.price_amount and trigger.price_amount:
            check = offer_price_check(
                offer_price=self.price,
                core_price=trigger.price,
                allow_high_price=self.allow_high_price,
                product=self.product if self.product_id else None,
                trigger=trigger,
            )
            if check.refusal:
                errors.setdefault("price_amount", []).append(check.refusal)
            if check.warning:
                self.price_warnings.append(check.warning)
        if errors:
            raise ValidationError(errors)


# Pricing guardrails from the strategy article: good add-ons cost 10–30% of the core
# product; above 50% of the cart anchoring fails and refunds rise.
ADDON_SWEET_SPOT = (Decimal("10"), Decimal("30"))
ADDON_HARD_LIMIT = Decimal("50")


class DecisionStatus(models.TextChoices):
    PRESENTED = "presented", "Shown, waiting for the buyer"
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"


class OfferDecision(models.Model):
    """One post-purchase offer shown to one order, and what the buyer did with it.

    The row is the single-use token: accepting or declining moves it out of PRESENTED with one
    conditional UPDATE, so a reused or concurrent click finds nothing to move. The price and
    tax the buyer saw are frozen here and are exactly what is charged. The charge itself is a
    payments ChargeAttempt (its status is the source of truth for queued / charged / failed).
    """

    order = models.ForeignKey(
        "storefront.Order", on_delete=models.CASCADE, related_name="offer_decisions"
    )
    customer = models.ForeignKey("storefront.Customer", on_delete=models.CASCADE)
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, related_name="decisions")
    kind = models.CharField(max_length=12, choices=OfferKind.choices)
    status = models.CharField(
        max_length=10, choices=DecisionStatus.choices, default=DecisionStatus.PRESENTED
    )
    nonce = models.CharField(max_length=32, unique=True)  # signed into the buyer's token
    expires_at = models.DateTimeField()
    # [shown, shown + offer.customer_cap) for upsells; no two overlap for one customer.
    cap_window = DateTimeRangeField(null=True, blank=True)
    # What the buyer was shown, in minor units of `currency`: net + tax = total.
    net_amount = models.PositiveIntegerField()
    tax_amount = models.PositiveIntegerField()
    total_amount = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    tax_rate = models.DecimalField(max_digits=6, decimal_places=3)
    tax_inclusive = models.BooleanField()
    tax_name = models.CharField(max_length=40, blank=True)
    attempt = models.OneToOneField(
        "payments.ChargeAttempt",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="offer_decision",
    )
    presented_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    # Set when on-session authentication failed or was abandoned: the follow-up worker
    # picks these rows (followup_flagged_at IS NOT NULL) for the email instead.
    followup_flagged_at = models.DateTimeField(null=True, blank=True)
    followup_reason = models.CharField(max_length=100, blank=True)

    class Meta:
        constraints = [
            # Per order: one upsell and one downsell, each decided once.
            models.UniqueConstraint(fields=["order", "kind"], name="offerdecision_one_per_kind"),
            models.UniqueConstraint(fields=["order", "offer"], name="offerdecision_one_per_offer"),
            models.CheckConstraint(
                condition=Q(kind__in=["upsell", "downsell"]), name="offerdecision_post_purchase"
            ),
            models.CheckConstraint(
                condition=Q(total_amount=models.F("net_amount") + models.F("tax_amount")),
                name="offerdecision_total_is_net_plus_tax",
            ),
            models.CheckConstraint(
                condition=Q(status="presented", decided_at__isnull=True)
                | (~Q(status="presented") & Q(decided_at__isnull=False)),
                name="offerdecision_decided_at_set",
            ),
            # The per-customer cap over a window, held by the database under concurrency.
            ExclusionConstraint(
                name="offerdecision_customer_cap_window",
                expressions=[
                    ("customer", RangeOperators.EQUAL),
                    ("cap_window", RangeOperators.OVERLAPS),
                ],
                condition=Q(kind="upsell", cap_window__isnull=False),
            ),
        ]
        indexes = [
            models.Index(
                fields=["followup_flagged_at"],
                name="offerdecision_followup_idx",
                condition=Q(followup_flagged_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.offer_id} for order {self.order_id} [{self.status}]"


class CouponKind(models.TextChoices):
    PERCENT = "percent", "Percent off"
    FIXED = "fixed", "Fixed amount off"


class Coupon(models.Model):
    """A discount code for the checkout: a percentage or a fixed amount off the whole order
    (core product and bump) or off the named products only, between two dates.

    Both redemption limits are held by the database inside the order's transaction
    (offers.coupons.coupon_redeem): `times_redeemed` moves with one conditional UPDATE that
    refuses to pass `max_redemptions`, and each buyer's uses live in CouponCustomerUse, moved
    by one INSERT … ON CONFLICT DO UPDATE … WHERE uses < limit. A pending checkout holds its
    use until it fails or the same buyer starts again; a paid one keeps it."""

    code = models.CharField(
        max_length=40,
        help_text="What the buyer types or the ?coupon= link carries; letters, digits, - and _. "
        "Matched without regard to case.",
    )
    kind = models.CharField(max_length=8, choices=CouponKind.choices, default=CouponKind.PERCENT)
    percent_off = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="For a percent coupon: e.g. 20.00 for 20% off.",
    )
    amount_off = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="For a fixed coupon: the amount off, in the coupon's currency.",
    )
    currency = models.CharField(max_length=3, default="USD")
    applies_to_all = models.BooleanField(
        default=True,
        verbose_name="whole order",
        help_text="Off the whole order (core product and bump); untick to name the products.",
    )
    products = models.ManyToManyField(
        "storefront.Product",
        blank=True,
        related_name="coupons",
        help_text="When not the whole order: the products it takes money off.",
    )
    starts_at = models.DateTimeField(null=True, blank=True, help_text="Empty: valid at once.")
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    max_redemptions = models.PositiveIntegerField(
        null=True, blank=True, help_text="Uses in total; empty for no limit."
    )
    max_per_customer = models.PositiveIntegerField(
        null=True, blank=True, default=1, help_text="Uses per buyer (email); empty for no limit."
    )
    times_redeemed = models.PositiveIntegerField(default=0, editable=False)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "coupon"
        verbose_name_plural = "coupons"
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                Upper("code"),
                name="coupon_code_unique_ci",
                violation_error_message="A coupon with this code already exists (codes "
                "ignore case).",
            ),
            models.CheckConstraint(
                condition=Q(code__regex=r"^[A-Za-z0-9_-]{1,40}$"),
                name="coupon_code_chars",
                violation_error_message="A code has only letters, digits, - and _.",
            ),
            models.CheckConstraint(
                condition=(
                    Q(kind="percent", percent_off__gt=0, percent_off__lte=100, amount_off=None)
                    | Q(kind="fixed", amount_off__gt=0, percent_off=None)
                ),
                name="coupon_kind_has_its_value",
            ),
            models.CheckConstraint(
                condition=Q(starts_at=None) | Q(ends_at=None) | Q(ends_at__gt=F("starts_at")),
                name="coupon_ends_after_start",
            ),
            models.CheckConstraint(
                condition=Q(max_redemptions=None) | Q(max_redemptions__gt=0),
                name="coupon_max_redemptions_positive",
            ),
            models.CheckConstraint(
                condition=Q(max_per_customer=None) | Q(max_per_customer__gt=0),
                name="coupon_max_per_customer_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.code

    @property
    def describe(self) -> str:
        if self.kind == CouponKind.PERCENT:
            return f"{self.percent_off.normalize():f}% off"
        return f"{Money(self.amount_off or 0, self.currency)} off"

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if self.kind == CouponKind.PERCENT:
            if self.percent_off is None or not (0 < self.percent_off <= 100):
                errors["percent_off"] = ["Enter a percentage above 0 and at most 100."]
            if self.amount_off is not None:
                errors["amount_off"] = ["A percent coupon has no fixed amount; leave it empty."]
        elif self.kind == CouponKind.FIXED:
            if not self.amount_off:
                errors["amount_off"] = ["Enter the amount off, e.g. 5.00."]
            if self.percent_off is not None:
                errors["percent_off"] = ["A fixed coupon has no percentage; leave it empty."]
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            errors["ends_at"] = ["The end must come after the start."]
        if errors:
            raise ValidationError(errors)


class CouponRedemption(models.Model):
    """One order's use of a coupon, written in the order's transaction. `released_at` is set
    when the order failed or was replaced by the buyer's next checkout: its use is given back."""

    coupon = models.ForeignKey(Coupon, on_delete=models.PROTECT, related_name="redemptions")
    order = models.OneToOneField(
        "storefront.Order", on_delete=models.CASCADE, related_name="coupon_redemption"
    )
    customer = models.ForeignKey("storefront.Customer", on_delete=models.CASCADE, related_name="+")
    code = models.CharField(max_length=40)  # as applied, for receipts and the dashboard
    # The discount on the order in minor units of `currency` (before tax where prices exclude
    # it): the sum of its lines' discount_amount.
    amount = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    created_at = models.DateTimeField(auto_now_add=True)
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "coupon redemption"
        verbose_name_plural = "coupon redemptions"
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["coupon", "created_at"], name="couponredemption_coupon_idx")
        ]

    def __str__(self) -> str:
        return f"{self.code} on order {self.order_id}"


class CouponCustomerUse(models.Model):
    """How many uses of a coupon one buyer holds: the per-buyer limit's counter, one row per
    (coupon, customer), moved only by conditional SQL in offers.coupons."""

    coupon = models.ForeignKey(Coupon, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey("storefront.Customer", on_delete=models.CASCADE, related_name="+")
    uses = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "coupon use per buyer"
        verbose_name_plural = "coupon uses per buyer"
        constraints = [
            models.UniqueConstraint(
                fields=["coupon", "customer"], name="couponcustomeruse_one_per_buyer"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.uses} use(s) of coupon {self.coupon_id} by customer {self.customer_id}"
