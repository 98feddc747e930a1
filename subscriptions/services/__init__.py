"""Starting subscriptions, billing their periods exactly once, dunning, and the buyer's and the
creator's changes.

Every renewal and every dunning retry is a payments ChargeAttempt with the purpose
"sub:<id>:<period>:<try>" (core/orderkeys.py), committed before the off-session charge on the
vaulted card; `payments.attempt_execute` claims it CREATED → IN_FLIGHT once, so concurrent
beats, a retried task or a restarted worker charge once. The outcome comes back through
`on_attempt_outcome`, inside payments' recording transaction, and moves the subscription.
Periods are computed from the stored anchor (subscriptions/periods.py) and stored when billed.
"""

from subscriptions.services.billing import (
    LOOP_RENEW,
    LOOP_RESUME,
    LOOP_RETRY,
    PlanPrice,
    RenewalRun,
    SubscriptionRefused,
    on_attempt_outcome,
    plan_cache_key,
    plan_for,
    plan_price,
    renewal_charge,
    renewals_run,
    retry_charge,
    subscription_start,
    subscription_status_move,
)
from subscriptions.services.changes import (
    subscription_cancel_at_period_end,
    subscription_cancel_now,
    subscription_card_update,
    subscription_pause,
    subscription_refund_last,
    subscription_resume,
    subscription_unpause,
)
from subscriptions.services.endings import on_dispute_closed, on_ledger_entry
from subscriptions.services.notify import LOOP_EXPIRY, expiry_reminders_queue, notice_queue

__all__ = [
    "LOOP_EXPIRY",
    "LOOP_RENEW",
    "LOOP_RESUME",
    "LOOP_RETRY",
    "PlanPrice",
    "RenewalRun",
    "SubscriptionRefused",
    "expiry_reminders_queue",
    "notice_queue",
    "on_attempt_outcome",
    "on_dispute_closed",
    "on_ledger_entry",
    "plan_cache_key",
    "plan_for",
    "plan_price",
    "renewal_charge",
    "renewals_run",
    "retry_charge",
    "subscription_cancel_at_period_end",
    "subscription_cancel_now",
    "subscription_card_update",
    "subscription_pause",
    "subscription_refund_last",
    "subscription_resume",
    "subscription_start",
    "subscription_status_move",
    "subscription_unpause",
]
