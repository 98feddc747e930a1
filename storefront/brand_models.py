"""The store's brand (storefront/branding.py): a draft the creator previews, and what buyers see."""

from __future__ import annotations

from django.db import models


class StoreBrand(models.Model):
    """The store's look: two rows, the draft the creator edits and previews, and the published
    one buyers see (storefront.branding; "Publish" copies the draft over it)."""

    class Stage(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"

    class Typeface(models.TextChoices):
        SYSTEM = "system", "System (no download)"
        INTER = "inter", "Inter (sans-serif)"
        LORA = "lora", "Lora (serif)"
        ATKINSON = "atkinson", "Atkinson Hyperlegible (for readability)"

    class Scheme(models.TextChoices):
        LIGHT = "light", "Light"
        DARK = "dark", "Dark"

    stage = models.CharField(max_length=10, choices=Stage.choices, unique=True)
    accent_color = models.CharField(max_length=7, default="#0b57d0")
    typeface = models.CharField(max_length=10, choices=Typeface.choices, default="system")
    scheme = models.CharField(max_length=5, choices=Scheme.choices, default="light")
    logo = models.JSONField(default=dict, blank=True)  # storefront.media record, or {}
    logo_alt = models.CharField(max_length=120, blank=True)
    creator_name = models.CharField(max_length=100, blank=True)
    creator_photo = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(accent_color__regex=r"^#[0-9a-f]{6}$"),
                name="storebrand_accent_hex",
            ),
            models.CheckConstraint(
                condition=models.Q(logo={}) | ~models.Q(logo_alt=""),
                name="storebrand_logo_has_alt",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_stage_display()} brand"
