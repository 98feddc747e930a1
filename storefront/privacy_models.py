"""A buyer's request to export or erase their data (storefront.privacy runs them)."""

from __future__ import annotations

from django.db import models


class PrivacyRequestKind(models.TextChoices):
    EXPORT = "export", "Export (a copy of the buyer's data)"
    ERASURE = "erasure", "Erasure (pseudonymise the buyer)"


class PrivacyRequestState(models.TextChoices):
    RECEIVED = "received", "Received"
    DONE = "done", "Done"
    FAILED = "failed", "Failed (will be retried)"


class PrivacyRequestChannel(models.TextChoices):
    ADMIN = "admin", "Store admin"
    API = "api", "Partner API"
    BUYER = "buyer", "Buyer's signed link"


class PrivacyRequest(models.Model):
    """A buyer's request to export or erase what the store holds on their address
    (storefront.privacy). The address itself is kept only until the request is done (an
    export also keeps its result for `PRIVACY_EXPORT_KEEP_DAYS`); `email_digest` stays, so the
    creator can still see which requests concerned one address without holding it."""

    kind = models.CharField(max_length=8, choices=PrivacyRequestKind.choices)
    channel = models.CharField(max_length=8, choices=PrivacyRequestChannel.choices)
    email = models.EmailField(blank=True)  # emptied when done (erasure) or when pruned (export)
    email_digest = models.CharField(max_length=64, db_index=True)
    state = models.CharField(
        max_length=10, choices=PrivacyRequestState.choices, default=PrivacyRequestState.RECEIVED
    )
    requested_by = models.CharField(max_length=150, blank=True)  # staff user, API key, "buyer"
    requested_at = models.DateTimeField(auto_now_add=True)
    done_at = models.DateTimeField(null=True, blank=True)
    # What was found and changed, by table ({"storefront.order": 2, …}): for the creator.
    summary = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)  # the export document, until pruned
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-requested_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(state="done") | models.Q(done_at__isnull=False),
                name="privacyrequest_done_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.state})"
