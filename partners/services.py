"""API keys, idempotency records and signed outbound webhooks (writes)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.cpu_slots import waiting
from core.loops import each_pk_done, each_record
from core.outbound import outbound_post
from core.tasks import enqueue
from partners.models import (
    MAX_RATE_PER_MINUTE,
    ApiKey,
    DeliveryStatus,
    IdempotencyRecord,
    WebhookDelivery,
    WebhookSubscription,
)

logger = logging.getLogger(__name__)

KEY_PREFIX = "sfk"
# How a key looks in a log line, so core.logging can redact it.
KEY_PATTERN = r"(?<![A-Za-z0-9])sfk_[A-Za-z0-9]{8}_[A-Za-z0-9_-]{20,}"
LAST_USED_RESOLUTION = dt.timedelta(seconds=60)


# --- API keys --------------------------------------------------------------------------------


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    token: str  # the full key: shown to the creator once, never stored


def api_key_create(
    *, name: str, scope: str, created_by: str = "", rate_per_minute: int | None = None
) -> IssuedKey:
    prefix = secrets.token_hex(4)
    token = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    fields: dict[str, Any] = {}
    if rate_per_minute is not None:
        if not 1 <= rate_per_minute <= MAX_RATE_PER_MINUTE:
            raise ValueError(f"rate_per_minute must be 1–{MAX_RATE_PER_MINUTE}")
        fields["rate_per_minute"] = rate_per_minute
    key = ApiKey.objects.create(
        name=name[:100],
        prefix=prefix,
        secret_hash=_hash(token),
        scope=scope,
        created_by=created_by[:150],
        **fields,
    )
    return IssuedKey(key, token)


def api_key_issue_for(*, key: ApiKey) -> str:
    """Fill prefix and hash on an unsaved key (the admin's add form); return the token."""
    key.prefix = secrets.token_hex(4)
    token = f"{KEY_PREFIX}_{key.prefix}_{secrets.token_urlsafe(32)}"
    key.secret_hash = _hash(token)
    return token


def api_key_authenticate(*, token: str) -> ApiKey | None:
    """The live key of *this* store that `token` is, or None. Constant-time on the secret."""
    parts = token.split("_")
    if len(parts) < 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 8:
        return None
    if not all(c in "0123456789abcdef" for c in parts[1]):
        return None  # prefixes are hex; anything else (a NUL byte…) never reaches the database
    key = ApiKey.objects.filter(prefix=parts[1]).first()
    # Compare even when the prefix is unknown, so timing does not tell which prefixes exist.
    expected = key.secret_hash if key else "0" * 64
    if not hmac.compare_digest(expected, _hash(token)) or key is None or key.revoked_at:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def api_key_revoke(*, key: ApiKey) -> bool:
    return bool(
        ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    )


# --- idempotency -----------------------------------------------------------------------------


class IdempotencyConflict(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def request_fingerprint(*, method: str, path: str, body: bytes) -> str:
    # Semantically equal JSON bodies (key order, spacing) hash the same.
    try:
        canonical = json.dumps(json.loads(body or b"{}"), sort_keys=True, separators=(",", ":"))
    except (ValueError, UnicodeDecodeError):
        canonical = body.decode("latin-1")
    return _hash(f"{method}\n{path}\n{canonical}")


def idempotency_begin(
    *,
    api_key: ApiKey,
    key: str,
    method: str,
    path: str,
    request_hash: str,
    wait_seconds: float = 10.0,
) -> tuple[IdempotencyRecord, bool]:
    """Claim `key` for this request (→ (record, True)), or return the finished record of an
    earlier identical request (→ (record, False)). Keys are the store's, whichever of its API
    keys sent them: a retry through another write key replays, it does not act twice.
    Raises IdempotencyConflict when the key was used for a different request, or is still in
    progress after `wait_seconds`."""
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(
                api_key=api_key,
                key=key,
                method=method,
                path=path[:500],
                request_hash=request_hash,
            )
        return record, True
    except IntegrityError:
        pass
    deadline = time.monotonic() + wait_seconds
    while True:
        record = IdempotencyRecord.objects.get(key=key)
        if record.request_hash != request_hash:
            raise IdempotencyConflict(
                "idempotency_key_reused",
                "This Idempotency-Key was already used with a different request.",
            )
        if record.status == IdempotencyRecord.Status.DONE:
            return record, False
        if time.monotonic() >= deadline:
            raise IdempotencyConflict(
                "idempotency_in_progress",
                "A request with this Idempotency-Key is still in progress; retry shortly.",
            )
        with waiting():  # the request that holds the key may need this CPU slot to finish
            time.sleep(0.05)


def idempotency_finish(*, record: IdempotencyRecord, status: int, body: Any) -> None:
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        status=IdempotencyRecord.Status.DONE,
        response_status=status,
        response_body=body,
        finished_at=timezone.now(),
    )


def idempotency_release(*, record: IdempotencyRecord) -> None:
    """The request crashed before any effect: free the key so the client may retry."""
    IdempotencyRecord.objects.filter(
        pk=record.pk, status=IdempotencyRecord.Status.IN_PROGRESS
    ).delete()


# --- outbound webhooks -----------------------------------------------------------------------

SIGNATURE_HEADER = "X-Storefront-Signature"
TIMESTAMP_HEADER = "X-Storefront-Timestamp"
STORE_HEADER = "X-Storefront-Store"
# Event ids are derived from (store, event) so they are the same on every dispatch of one
# event and different across stores: a partner receiving many stores can dedupe on them.
_EVENT_ID_NAMESPACE = uuid.UUID("5b0f2b5e-8a7c-4f7e-9a51-6c1f4b7f0e21")
MAX_ATTEMPTS = 5
BACKOFF_BASE_SECONDS = 30  # 30 s, 1 min, 2 min, 4 min … between attempts
DELIVERY_TIMEOUT_SECONDS = 10
# While an attempt is running, the delivery is leased for this long.
DELIVERY_LEASE = dt.timedelta(seconds=DELIVERY_TIMEOUT_SECONDS * 3)
# A pending delivery this far past its time has lost its task (`webhook_deliveries_overdue`).
DELIVERY_OVERDUE = dt.timedelta(minutes=5)
LOOP_OVERDUE = "partners.webhook_deliveries_overdue"


def webhook_secret_new() -> str:
    return f"whsk_{secrets.token_urlsafe(32)}"


def webhook_sign(*, secret: str, timestamp: int, body: bytes) -> str:
    """`v1=` + hex HMAC-SHA256 of "<timestamp>.<body>". Receivers recompute it and refuse a
    timestamp older than a few minutes, so a captured delivery cannot be replayed later."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def webhook_verify(
    *,
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> bool:
    """What a receiver does (documented for partners; used by our tests)."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs((now or time.time()) - ts) > tolerance_seconds:
        return False
    return hmac.compare_digest(webhook_sign(secret=secret, timestamp=ts, body=body), signature)


LOOP_DISPATCH = "partners.webhook_dispatch"


def webhook_dispatch(
    event_name: str, payload: dict[str, Any], *, event_id: str | None = None
) -> list[WebhookDelivery]:
    """Queue a signed delivery of `payload` to every active subscription wanting `event_name`.

    Call it after the change it reports has committed (analytics' listener does). Deliveries
    are unique per subscription and event id, so dispatching the same event twice is a no-op.
    """
    event_id = event_id or f"evt_{uuid.uuid4().hex}"
    created = []

    def queue(sub: WebhookSubscription) -> None:
        if not sub.wants(event_name):
            return
        with transaction.atomic():
            delivery, new = WebhookDelivery.objects.get_or_create(
                subscription=sub,
                event_id=event_id,
                defaults={
                    "event_name": event_name,
                    "payload": payload,
                    "next_attempt_at": timezone.now(),
                },
            )
            if new:
                enqueue("partners.webhook_deliver", delivery_id=delivery.pk)
                created.append(delivery)

    # One subscription that cannot be queued for must not cost the others their delivery.
    each_record(
        LOOP_DISPATCH,
        WebhookSubscription.objects.filter(is_active=True),
        queue,
        key=lambda sub: sub.pk,
        label=lambda sub: f"webhook subscription {sub.url}",
    )
    return created


_ANY_ACTIVE_KEY = "partners:webhooks-active"


def webhooks_active_any() -> bool:
    """Whether this store has an active webhook subscription, cached per change: most stores
    have none, and every funnel event asks. Any save or delete of a subscription sets the
    cached answer to True at once (partners.apps), so a cached "none" never hides a new
    subscription; a stale True only costs the query below. "None" is kept briefly (60 s)
    in case that write was lost; with the cache down the database answers."""
    from django.core.cache import cache

    cached = cache.get(_ANY_ACTIVE_KEY)
    if cached is not None:
        return bool(cached)
    found = WebhookSubscription.objects.filter(is_active=True).exists()
    cache.add(_ANY_ACTIVE_KEY, found, timeout=300 if found else 60)
    return found


def webhooks_changed(**_: Any) -> None:
    """post_save / post_delete of a subscription (connected in partners.apps)."""
    from django.core.cache import cache

    cache.set(_ANY_ACTIVE_KEY, True, timeout=300)


def on_event_committed(events: list[tuple[str, dict[str, Any]]]) -> None:
    """analytics listener: each committed funnel event becomes a webhook, if anyone wants it
    (one check for all the events of a transaction)."""
    if webhooks_active_any():
        for name, payload in events:
            webhook_dispatch(name, payload, event_id=webhook_event_id(payload.get("id")))


def on_notice_committed(name: str, payload: dict[str, Any], key: str) -> None:
    """analytics notice listener (payout account and transfer changes): the same webhook path,
    with the event id derived from the change's key, so one change is one delivery."""
    if webhooks_active_any():
        webhook_dispatch(name, payload, event_id=webhook_event_id(key))


def webhook_event_id(event_pk: Any) -> str:
    """`evt_<uuid>`: stable for one event of this store, unique across stores."""
    return f"evt_{uuid.uuid5(_EVENT_ID_NAMESPACE, f'{connection.schema_name}:{event_pk}').hex}"


def _claim(delivery_id: int) -> WebhookDelivery | None:
    now = timezone.now()
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id,
        status=DeliveryStatus.PENDING,
        next_attempt_at__lte=now,
        attempts__lt=MAX_ATTEMPTS,
    ).update(next_attempt_at=now + DELIVERY_LEASE)
    if not claimed:
        return None
    return WebhookDelivery.objects.select_related("subscription").get(pk=delivery_id)


def webhook_deliver(*, delivery_id: int) -> WebhookDelivery | None:
    """Make one attempt if the delivery is due; on failure schedule the next one with backoff,
    or mark it failed after MAX_ATTEMPTS. Safe to run twice: a second run finds it leased."""
    delivery = _claim(delivery_id)
    if delivery is None:
        return None
    sub = delivery.subscription
    if not sub.is_active:
        # Deactivated after this delivery was queued: checked at send time, never sent.
        WebhookDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING).update(
            status=DeliveryStatus.FAILED,
            last_status_code=None,
            last_error="not sent: the subscription is inactive",
        )
        delivery.refresh_from_db()
        return delivery
    store = connection.schema_name
    body = json.dumps(
        {
            "id": delivery.event_id,
            "type": delivery.event_name,
            "store": store,
            "data": delivery.payload,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    timestamp = int(time.time())
    # Redirects are not followed and private targets are refused (core.outbound), so the
    # signature never travels anywhere but the subscribed URL.
    answer = outbound_post(
        sub.url,
        body=body,
        timeout=DELIVERY_TIMEOUT_SECONDS,
        headers={
            "Content-Type": "application/json",
            "User-Agent": "storefront-webhooks/1",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: webhook_sign(secret=sub.secret, timestamp=timestamp, body=body),
            "X-Storefront-Event": delivery.event_name,
            "X-Storefront-Delivery": delivery.event_id,
            STORE_HEADER: store,
        },
    )
    code, error, ok = answer.status, answer.error[:500], answer.ok
    attempts = delivery.attempts + 1
    fields: dict[str, Any] = {"attempts": attempts, "last_status_code": code, "last_error": error}
    with transaction.atomic():
        if ok:
            fields.update(status=DeliveryStatus.SUCCEEDED, delivered_at=timezone.now())
        elif attempts >= MAX_ATTEMPTS:
            fields.update(status=DeliveryStatus.FAILED)
        else:
            delay = dt.timedelta(seconds=BACKOFF_BASE_SECONDS * 2 ** (attempts - 1))
            fields.update(next_attempt_at=timezone.now() + delay)
            enqueue("partners.webhook_deliver", delay=delay, delivery_id=delivery.pk)
        WebhookDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING).update(
            **fields
        )
    delivery.refresh_from_db()
    return delivery


def webhook_deliveries_overdue(*, limit: int = 50) -> int:
    """Periodic sweep: pending deliveries more than DELIVERY_OVERDUE past their time. Their task
    was lost: a broker that lost its data, or a worker killed during the attempt (its lease
    has run out by then). Each gets its attempt now through the task's own claim, so a late
    task or a second sweep sends nothing twice. Oldest first, at most `limit` per run (an
    attempt may wait DELIVERY_TIMEOUT_SECONDS on a slow receiver). Returns the attempts made."""
    overdue = WebhookDelivery.objects.filter(
        status=DeliveryStatus.PENDING,
        next_attempt_at__lt=timezone.now() - DELIVERY_OVERDUE,
    ).order_by("next_attempt_at", "pk")
    return each_pk_done(
        LOOP_OVERDUE,
        overdue,
        lambda pk: webhook_deliver(delivery_id=pk),
        limit=limit,
        what="webhook delivery",
    )


def webhook_redeliver(*, delivery: WebhookDelivery) -> None:
    """Start a delivery over (admin action): a fresh budget of attempts, sent now."""
    with transaction.atomic():
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=timezone.now(),
            last_error="",
            delivered_at=None,
        )
        enqueue("partners.webhook_deliver", delivery_id=delivery.pk)
