"""Payments tasks: load ids, call one service. Each is safe to run twice.

`acks_late` (+ reject on a lost worker) only where running twice is harmless, which is true
of both: webhook processing re-reads and records idempotently, reconciliation takes a
per-tenant lock and is idempotent. Retries back off exponentially (jittered) up to 5 min,
well under the broker's visibility timeout, and stop after a cap; whatever is still
unprocessed is picked up by the next reconciliation run.
"""

from __future__ import annotations

from dataclasses import asdict

from core.tasks import tenant_task
from payments.gateway import GatewayUnavailable
from payments.reconciliation import reconcile_run
from payments.transfer_sweeps import transfers_reconcile_open as _transfers_reconcile_open
from payments.transfers import reversals_send as _reversals_send
from payments.transfers import reverse_for_cause as _reverse_for_cause
from payments.transfers import transfer_for_charge as _transfer_for_charge
from payments.webhooks import webhook_event_process

# Tasks that call the gateway: late ack (each is safe twice), retried with jittered backoff
# while the gateway is unreachable, up to 5 min apart and 8 times.
GATEWAY_RETRIES = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (GatewayUnavailable,),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
}


@tenant_task(
    name="payments.process_webhook_event",
    **GATEWAY_RETRIES,
)
def process_webhook_event(*, webhook_event_id: int) -> bool:
    return webhook_event_process(webhook_event_id=webhook_event_id)


@tenant_task(name="payments.reconcile", acks_late=True, reject_on_worker_lost=True)
def reconcile() -> dict:
    # No retry: a gateway outage ends the run cleanly; the next beat tick runs it again.
    return asdict(reconcile_run())


@tenant_task(
    name="payments.transfer_for_charge",
    **GATEWAY_RETRIES,
)
def transfer_for_charge(*, charge_attempt_id: int) -> str | None:
    # Safe twice: one TransferAttempt per charge and a conditional claim (payments.transfers).
    row = _transfer_for_charge(charge_attempt_id=charge_attempt_id)
    return row.status if row is not None else None


@tenant_task(name="payments.transfers_reconcile", acks_late=True, reject_on_worker_lost=True)
def transfers_reconcile() -> int:
    return _transfers_reconcile_open()


@tenant_task(
    name="payments.reverse_for_cause",
    **GATEWAY_RETRIES,
)
def reverse_for_cause(*, kind: str, gateway_ref: str) -> int:
    # Safe twice: one TransferReversal per (transfer, cause) and a conditional claim.
    return len(_reverse_for_cause(kind=kind, gateway_ref=gateway_ref))


@tenant_task(
    name="payments.reversals_send",
    **GATEWAY_RETRIES,
)
def reversals_send(*, transfer_id: int) -> int:
    return _reversals_send(transfer_id=transfer_id)
