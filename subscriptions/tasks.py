"""Subscription tasks: load ids, call one service. Safe to run twice."""

from core.tasks import tenant_task
from subscriptions import notices, services


@tenant_task(name="subscriptions.renew_due")
def renew_due() -> int:
    """Periodic (per store via core.tasks.fan_out): due renewals, due dunning retries, unsent
    attempts and card expiry reminders. Two beats at once charge once: every charge is an
    attempt claimed CREATED → IN_FLIGHT by one caller (payments.services._claim)."""
    run = services.renewals_run()
    return run.renewed + run.retried


@tenant_task(
    name="subscriptions.notice_send",
    autoretry_for=(OSError,),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=5,
)
def notice_send(*, notice_id: int) -> bool:
    return notices.notice_send(notice_id=notice_id)


@tenant_task(
    name="subscriptions.renewed",
    autoretry_for=(OSError,),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=5,
    acks_late=True,
    reject_on_worker_lost=True,
)
def renewed(*, notice_id: int, webhook: dict) -> bool:
    """A paid renewal's one message: the `subscription.renewed` webhook to the listeners
    (they dedupe on its key), then the receipt email (claimed on its Notice row). A retry
    after a failed send hands the webhook over again, deduped."""
    from analytics.services import notice_deliver

    notice_deliver(name=webhook["name"], payload=webhook["payload"], key=webhook["key"])
    return notices.notice_send(notice_id=notice_id)
