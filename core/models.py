"""Platform-wide tables in the public schema: the task outbox."""
from django.db import models


class OutboxMessage(models.Model):
    """A task to send to the broker, written in the same transaction as the change it follows.

    It survives a broker that is down at commit time: a periodic job re-sends what was not
    dispatched. Tasks are idempotent, so a message sent twice does no harm. A message with
    `available_at` in the future is a scheduled job (long delays never sit in the broker).
    """

    schema_name = models.CharField(max_length=63, db_index=True)
    task_name = models.CharField(max_length=200)
    kwargs = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    available_at = models.DateTimeField(db_index=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    send_attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["available_at"],
                name="outbox_pending_idx",
                condition=models.Q(dispatched_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"{self.task_name}@{self.schema_name}"
