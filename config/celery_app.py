"""The Celery app: tenant-aware (tenant-schemas-celery stamps the schema on every task sent)."""
import os

from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = CeleryApp("storefront")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Beat runs in the public schema; each entry is a public task that fans out one task per
# tenant (core.tasks.fan_out). Periodic effects are idempotent, so two beats do no harm.
app.conf.beat_schedule = {
    "drain-outbox": {
        "task": "core.tasks.fan_out",
        "schedule": 30.0,
        "args": ("core.tasks.drain_outbox",),
    },
    # Re-read open payments, refunds and unprocessed webhooks per creator. A second beat
    # only starts a run that finds the tenant's advisory lock taken, or repeats a no-op.
    "payments-reconcile": {
        "task": "core.tasks.fan_out",
        "schedule": 300.0,
        "args": ("payments.reconcile",),
    },
}
