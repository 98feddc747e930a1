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


class LoopFailure(models.Model):
    """A record that failed in a periodic loop (core/loops.py): why, and how many runs in a row.

    Kept in the public schema next to the outbox so one table serves every loop, platform-wide
    ones included, and /readyz can count it in one query; `schema_name` says whose record it is
    (a creator's admin lists only its own). After LOOP_QUARANTINE_AFTER tries the row is
    quarantined: its loop skips the record until someone clears the row.
    """

    schema_name = models.CharField(max_length=63)
    loop = models.CharField(max_length=60)  # stable name, e.g. "payments.webhook_backlog"
    record_id = models.CharField(max_length=100)  # the record's key in its own table
    label = models.CharField(max_length=200, blank=True)  # what the record is, for a person
    tries = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    first_failed_at = models.DateTimeField()
    last_failed_at = models.DateTimeField()
    quarantined_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "record needing attention"
        verbose_name_plural = "records needing attention"
        constraints = [
            models.UniqueConstraint(
                fields=["schema_name", "loop", "record_id"], name="loopfailure_unique_record"
            )
        ]

    def __str__(self) -> str:
        return f"{self.loop} {self.record_id}@{self.schema_name}"
