"""Partner access to one creator's store: API keys, idempotency records, outbound webhooks.

Every table lives in the creator's schema, so a key, a record or a subscription of store A
does not exist at all when a request arrives on store B's host.
"""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from core.fields import SealedCharField
from core.outbound import validate_public_url

# A key may not be set to more than this: 100 requests a second is already far past what a
# partner integration needs, and the limit is what keeps one key from costing the others.
MAX_RATE_PER_MINUTE = 6000


class ApiKey(models.Model):
    class Scope(models.TextChoices):
        READ = "read", "Read only"
        WRITE = "write", "Read and write"

    name = models.CharField(max_length=100, help_text="Who uses this key, e.g. 'Zapier'.")
    # The public part of the key, used to find the row; the secret part is only stored hashed.
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    # sha256 of the whole key: keys are 256-bit random tokens, so a slow hash buys nothing.
    secret_hash = models.CharField(max_length=64, editable=False)
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.READ)
    rate_per_minute = models.PositiveIntegerField(
        default=600,
        help_text=f"Requests this key may make in any sixty seconds (1–{MAX_RATE_PER_MINUTE:,}).",
        validators=[MinValueValidator(1), MaxValueValidator(MAX_RATE_PER_MINUTE)],
    )
    created_by = models.CharField(max_length=150, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def can_write(self) -> bool:
        return self.scope == self.Scope.WRITE


class IdempotencyRecord(models.Model):
    """One `Idempotency-Key` of this store: inserted as in-progress *before* the effect, under
    the unique constraint, so concurrent requests with the same key collapse to one, whichever
    of the store's API keys sends them (`api_key` records the first sender)."""

    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress"
        DONE = "done"

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="idempotency")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    request_hash = models.CharField(max_length=64)  # sha256 of method, path and body
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.IN_PROGRESS)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # Per store (the table is in the store's schema), not per API key: two write keys
            # of one store sending the same key and body must make one refund, not two.
            models.UniqueConstraint(fields=["key"], name="idempotency_unique_key_per_store")
        ]

    def __str__(self) -> str:
        return f"{self.key} [{self.status}]"


class WebhookSubscription(models.Model):
    # Checked again at every send (core.outbound): DNS may change after the save.
    url = models.URLField(max_length=500, validators=[validate_public_url])
    # Event names (analytics.EventName values) or "*" for all.
    event_types = models.JSONField(default=list)
    # HMAC signing needs the secret itself, so it is encrypted (not hashed) at rest; random,
    # shown to the creator once, never in a list or log.
    secret = SealedCharField(max_length=80, editable=False)
    is_active = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.url

    def wants(self, event_name: str) -> bool:
        return self.is_active and ("*" in self.event_types or event_name in self.event_types)


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WebhookDelivery(models.Model):
    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_id = models.CharField(max_length=64)  # stable across retries: receivers dedupe on it
    event_name = models.CharField(max_length=40)
    payload = models.JSONField()
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    # A delivery is claimed by moving this into the future (a lease), so a task run twice
    # never posts twice at once, and no row lock is held across the HTTP call.
    next_attempt_at = models.DateTimeField()
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "event_id"], name="delivery_unique_event"
            )
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="delivery_pending_idx",
                condition=Q(status="pending"),
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_name} → {self.subscription} [{self.status}]"
