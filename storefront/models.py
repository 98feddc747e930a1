"""The creator's catalog: products on an ordered ladder (entry → companion → premium)."""
from django.db import models

from core.money import Money


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
    price_amount = models.PositiveIntegerField(help_text="Price in minor units (cents).")
    currency = models.CharField(max_length=3, default="USD")
    # Optional "was" price shown struck through; minor units, same currency.
    anchor_amount = models.PositiveIntegerField(null=True, blank=True)
    deliverable_url = models.URLField(blank=True)
    deliverable_file = models.FileField(upload_to="deliverables/", blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.DRAFT)
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
