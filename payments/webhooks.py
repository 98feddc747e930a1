"""Gateway webhooks: verify, store once by event id, then process by re-reading the object.

The endpoint only verifies the signature on the raw body, stores the event (unique by id;
a repeat counts a delivery) and enqueues processing after commit, so it answers fast.
Processing never trusts the payload: it re-reads the payment, refund or dispute from the
gateway (payments.reconciliation), so late, repeated, reordered and twin events all end in
the same state.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.tasks import enqueue
from payments.disputes import dispute_sync
from payments.gateway import get_gateway
from payments.models import WebhookEvent
from payments.reconciliation import payment_refunds_sync, payment_sync

logger = logging.getLogger(__name__)

PROCESS_TASK = "payments.process_webhook_event"


class WebhookRejected(ValueError):
    """Not a genuine event from the gateway (missing, wrong or stale signature; not an event)."""


def webhook_receive(*, payload: bytes, signature: str) -> tuple[WebhookEvent, bool]:
    """Verify and store one delivery; returns (event row, whether this delivery was new)."""
    try:
        event = get_gateway().event_parse(
            payload=payload, signature=signature, secret=settings.STRIPE_WEBHOOK_SECRET
        )
    except ValueError as exc:
        raise WebhookRejected(str(exc)) from exc
    # Whatever the adapter, an id that is not a non-empty string is refused, never stored as
    # "None" or "42": the event would be unprocessable and block nothing but itself forever.
    if not all(
        isinstance(v, str)
        for v in (event.event_id, event.event_type, event.object_type, event.object_id)
    ):
        raise WebhookRejected("malformed event: an id or type is not a string")
    if not event.event_id or not event.event_type:
        raise WebhookRejected("the event has no id or type")
    with transaction.atomic():
        row, created = WebhookEvent.objects.get_or_create(
            event_id=event.event_id[:100],
            defaults={
                "event_type": event.event_type[:100],
                "object_type": event.object_type[:50],
                "object_id": event.object_id[:100],
            },
        )
        if not created:
            WebhookEvent.objects.filter(pk=row.pk).update(deliveries=F("deliveries") + 1)
        if row.processed_at is None:
            enqueue(PROCESS_TASK, webhook_event_id=row.pk)
    return row, created


def webhook_event_process(*, webhook_event_id: int) -> bool:
    """Process a stored event once it is; safe to run twice or concurrently (every write it
    leads to is idempotent). Raises GatewayUnavailable for the task to retry."""
    event = WebhookEvent.objects.filter(pk=webhook_event_id).first()
    if event is None or event.processed_at is not None:
        return False
    twin_done = (
        WebhookEvent.objects.filter(
            object_id=event.object_id,
            event_type=event.event_type,
            processed_at__gte=event.received_at,
        )
        .exclude(pk=event.pk)
        .exists()
    )
    # A twin (same object and type) re-read the object after this one arrived: nothing newer
    # could be learnt from reading it again.
    if not twin_done and event.object_id:
        _dispatch(event)
    WebhookEvent.objects.filter(pk=event.pk, processed_at__isnull=True).update(
        processed_at=timezone.now()
    )
    return True


def _dispatch(event: WebhookEvent) -> None:
    kind, obj = event.event_type, event.object_id
    gateway = get_gateway()
    if event.object_type == "payment_intent":
        payment_sync(payment_ref=obj)
    elif event.object_type == "dispute" or kind.startswith("charge.dispute."):
        dispute_sync(dispute_ref=obj)
    elif event.object_type == "refund":
        payment_ref = gateway.refund_retrieve(obj).payment_ref
        if payment_ref:
            payment_refunds_sync(payment_ref=payment_ref)
    elif event.object_type == "charge":
        payment_ref = gateway.charge_payment_ref(obj)
        if not payment_ref:
            return
        if kind in ("charge.refunded", "charge.refund.updated"):
            payment_refunds_sync(payment_ref=payment_ref)
        else:
            payment_sync(payment_ref=payment_ref)
    else:
        logger.debug("webhook %s (%s) needs nothing from us", event.event_id, kind)
