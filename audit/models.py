"""The creator's audit trail: who did what to which object, when and from where. Append-only."""

from django.db import models
from django.utils import timezone


class AuditEntry(models.Model):
    """One staff, partner or system action that moved money or changed what buyers see.

    The actor is copied, not referenced: deleting a user must neither fail on nor rewrite
    the trail, and the database refuses UPDATE and DELETE on this table (migration 0002).
    """

    class ActorKind(models.TextChoices):
        USER = "user", "Staff user"
        API_KEY = "api_key", "API key"
        SYSTEM = "system", "System"
        ANONYMOUS = "anonymous", "Anonymous"

    occurred_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=150, blank=True)  # username, key prefix, task name
    # Dotted verb, e.g. "storefront.product.change", "payments.refund.issue", "api_key.revoke".
    action = models.CharField(max_length=100)
    object_type = models.CharField(max_length=100, blank=True)  # "app_label.model"
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    summary = models.CharField(max_length=300, blank=True)
    # {"field": [old, new], …} for changes, or whatever facts the action needs; never secrets.
    changes = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-pk"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit trail"
        indexes = [
            models.Index(fields=["object_type", "object_id"], name="audit_object_idx"),
            models.Index(fields=["action", "occurred_at"], name="audit_action_time_idx"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.occurred_at:%Y-%m-%d %H:%M} {self.actor_label or self.actor_kind} {self.action}"
        )
