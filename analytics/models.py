"""The append-only funnel event log (one per tenant schema)."""
from django.db import models
from django.utils import timezone


class EventName(models.TextChoices):
    PAGE_VIEWED = "page_viewed"
    CHECKOUT_INITIATED = "checkout_initiated"
    CHECKOUT_COMPLETED = "checkout_completed"
    CHECKOUT_FAILED = "checkout_failed"
    BUMP_OFFERED = "bump_offered"
    BUMP_ACCEPTED = "bump_accepted"
    UPSELL_OFFERED = "upsell_offered"
    UPSELL_ACCEPTED = "upsell_accepted"
    UPSELL_DECLINED = "upsell_declined"
    UPSELL_FAILED = "upsell_failed"
    UPSELL_CHARGED = "upsell_charged"
    DOWNSELL_OFFERED = "downsell_offered"
    EMAIL_SENT = "email_sent"
    REFUND_ISSUED = "refund_issued"
    CHARGEBACK_OPENED = "chargeback_opened"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    OFFER_PAUSED = "offer_paused"


class Event(models.Model):
    """One thing that happened in the funnel. Rows are never updated or deleted (a trigger
    refuses it); other apps' rows are referred to by id so analytics imports no other app."""

    name = models.CharField(max_length=40, choices=EventName.choices)
    occurred_at = models.DateTimeField(default=timezone.now)
    visitor_id = models.CharField(max_length=64, blank=True)
    customer_id = models.BigIntegerField(null=True, blank=True)
    order_id = models.BigIntegerField(null=True, blank=True)
    offer_id = models.BigIntegerField(null=True, blank=True)
    product_id = models.BigIntegerField(null=True, blank=True)
    variant = models.CharField(max_length=40, blank=True)
    source = models.CharField(max_length=100, blank=True)  # utm_source, or "email" etc.
    medium = models.CharField(max_length=100, blank=True)
    campaign = models.CharField(max_length=100, blank=True)
    amount = models.BigIntegerField(null=True, blank=True)  # minor units, when money moved
    currency = models.CharField(max_length=3, blank=True)
    reason = models.CharField(max_length=100, blank=True)
    properties = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["name", "occurred_at"], name="event_name_time_idx"),
            models.Index(fields=["order_id"], name="event_order_idx"),
            models.Index(fields=["offer_id", "name"], name="event_offer_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} @ {self.occurred_at:%Y-%m-%d %H:%M}"
