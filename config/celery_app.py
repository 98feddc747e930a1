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
    # Transfers to creators left unsent or in flight (a killed worker): read the gateway by
    # transfer group, else re-send with the same idempotency key (payments.transfers).
    "payments-transfers-reconcile": {
        "task": "core.tasks.fan_out",
        "schedule": 300.0,
        "args": ("payments.transfers_reconcile",),
    },
    # Follow-up cross-sell emails that are due, and claims left by a killed worker. Each row
    # is claimed with a conditional UPDATE, so a second beat's run sends nothing twice.
    "followups-send-due": {
        "task": "core.tasks.fan_out",
        "schedule": 120.0,
        "args": ("storefront.followups_send_due",),
    },
    # Upsells still queued behind the settlement gate long after their primary settled or
    # failed: the release message was lost with a broker's data. Each is claimed once.
    "upsell-gates-release-stale": {
        "task": "core.tasks.fan_out",
        "schedule": 300.0,
        "args": ("storefront.gates_release_stale",),
    },
    # Paid orders whose receipt is still unsent 10 minutes on: its task was lost, or its
    # retries were spent while the mail server was down. Claimed once per order.
    "storefront-receipts-overdue": {
        "task": "core.tasks.fan_out",
        "schedule": 300.0,
        "args": ("storefront.receipts_send_overdue",),
    },
    # Partner webhook deliveries left pending past their time: their task was lost (a broker
    # that lost its data, a worker killed mid-attempt). Each attempt is claimed once.
    "partners-webhooks-overdue": {
        "task": "core.tasks.fan_out",
        "schedule": 300.0,
        "args": ("partners.webhook_deliveries_overdue",),
    },
    # One-click upsells whose 3-D Secure confirmation was abandoned → flagged for follow-up.
    "upsell-flag-abandoned": {
        "task": "core.tasks.fan_out",
        "schedule": 600.0,
        "args": ("storefront.flag_abandoned_confirmations",),
    },
    # Subscriptions: due renewals and instalments, dunning retries, unsent renewal attempts,
    # card expiry reminders (subscriptions.services.renewals_run). Each charge is a committed
    # ChargeAttempt claimed once, so a second beat's run charges nothing twice.
    "subscriptions-renew": {
        "task": "core.tasks.fan_out",
        "schedule": 300.0,
        "args": ("subscriptions.renew_due",),
    },
    # Coupon uses held by checkouts left unpaid past COUPON_HOLD_MINUTES go back to the
    # coupon (storefront.services.coupon_holds): one conditional UPDATE each, run twice = once.
    "coupon-holds-release": {
        "task": "core.tasks.fan_out",
        "schedule": 300.0,
        "args": ("storefront.coupon_holds_release",),
    },
    # Pause offers whose refunds or chargebacks spike against their baseline.
    "offers-guardrails": {
        "task": "core.tasks.fan_out",
        "schedule": 900.0,
        "args": ("offers.guardrails_enforce",),
    },
    # Pending custom domains: look for their CNAME and TXT records (tenants.domains).
    "tenants-custom-domains-verify": {
        "task": "core.tasks.fan_out",
        "schedule": 300.0,
        "args": ("tenants.custom_domains_verify",),
    },
    # Keep spare schemas waiting, so a burst of sign-ups renames instead of cloning.
    "tenants-spares-refill": {
        "task": "core.tasks.fan_out",
        "schedule": 60.0,
        "args": ("tenants.spares_refill",),
    },
    # Fold queued changes into the analytics read models, so the dashboard stays quick.
    "analytics-rollups": {
        "task": "core.tasks.fan_out",
        "schedule": 300.0,
        "args": ("analytics.rollups_refresh",),
    },
    # Stores' sending domains re-checked, and the bounce mailbox read (tenants.mailevents).
    "tenants-mail-upkeep": {
        "task": "core.tasks.fan_out",
        "schedule": 300.0,
        "args": ("tenants.mail_upkeep",),
    },
    # Retention: stored gateway webhook events, partner delivery logs and old exports pruned.
    "storefront-retention-prune": {
        "task": "core.tasks.fan_out",
        "schedule": 3600.0,
        "args": ("storefront.retention_prune",),
    },
}
