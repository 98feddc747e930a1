"""Offer rules: bumps, post-purchase upsells and downsells, follow-up cross-sells.

Products are referred to by model label, so offers never import storefront.
"""
from decimal import Decimal

from django.db import models
from django.db.models import Q

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
    price_amount = models.PositiveIntegerField(help_text="Offer price in minor units (cents).")
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
                fields=["parent"], condition=Q(kind="downsell"), name="offer_one_downsell_per_upsell"
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


# Pricing guardrails from the strategy article: good add-ons cost 10–30% of the core
# product; above 50% of the cart anchoring fails and refunds rise.
ADDON_SWEET_SPOT = (Decimal("10"), Decimal("30"))
ADDON_HARD_LIMIT = Decimal("50")
