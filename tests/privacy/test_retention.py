"""Retention: stored gateway webhook events, finished partner deliveries and export documents
are pruned after their configured periods; what is younger, or still pending, stays."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from partners.models import WebhookDelivery, WebhookSubscription
from payments.models import WebhookEvent
from storefront.models import PrivacyRequest
from storefront.privacy.services import retention_prune


def _event(event_id, days_ago, *, processed=True):
    when = timezone.now() - dt.timedelta(days=days_ago)
    row = WebhookEvent.objects.create(
        event_id=event_id, event_type="charge.refunded", object_type="charge", object_id="ch"
    )
    WebhookEvent.objects.filter(pk=row.pk).update(
        received_at=when, processed_at=when if processed else None
    )


def _delivery(sub, event_id, days_ago, status):
    when = timezone.now() - dt.timedelta(days=days_ago)
    row = WebhookDelivery.objects.create(
        subscription=sub,
        event_id=event_id,
        event_name="refund_issued",
        payload={"customer_id": 1},
        status=status,
        next_attempt_at=when,
    )
    WebhookDelivery.objects.filter(pk=row.pk).update(created_at=when)


def test_each_kind_is_pruned_after_its_own_configured_period(tenant, settings):
    settings.RETENTION_GATEWAY_WEBHOOK_DAYS = 10
    settings.RETENTION_DELIVERY_LOG_DAYS = 5
    settings.PRIVACY_EXPORT_KEEP_DAYS = 2
    _event("evt_old", 11)
    _event("evt_young", 9)
    _event("evt_unprocessed", 30, processed=False)  # still to be processed: kept
    sub = WebhookSubscription.objects.create(url="https://partner.example/h", secret="s" * 32)
    _delivery(sub, "d_old_ok", 6, "succeeded")
    _delivery(sub, "d_old_failed", 6, "failed")
    _delivery(sub, "d_old_pending", 6, "pending")  # still being retried: kept
    _delivery(sub, "d_young", 4, "succeeded")
    old = PrivacyRequest.objects.create(
        kind="export",
        channel="admin",
        email="a@example.com",
        email_digest="d",
        state="done",
        done_at=timezone.now() - dt.timedelta(days=3),
        result={"data": {}},
    )
    young = PrivacyRequest.objects.create(
        kind="export",
        channel="admin",
        email="b@example.com",
        email_digest="e",
        state="done",
        done_at=timezone.now(),
        result={"data": {}},
    )

    assert retention_prune() == {"gateway_webhook_events": 1, "webhook_deliveries": 2, "exports": 1}
    assert sorted(WebhookEvent.objects.values_list("event_id", flat=True)) == [
        "evt_unprocessed",
        "evt_young",
    ]
    assert sorted(WebhookDelivery.objects.values_list("event_id", flat=True)) == [
        "d_old_pending",
        "d_young",
    ]
    old.refresh_from_db()
    young.refresh_from_db()
    assert (old.email, old.result, old.state) == ("", None, "done")  # the log of it stays
    assert young.result == {"data": {}}
    assert retention_prune() == {"gateway_webhook_events": 0, "webhook_deliveries": 0, "exports": 0}
