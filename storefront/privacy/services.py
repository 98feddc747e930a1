"""Privacy requests (export, erasure) and retention pruning. See the package docstring."""

from __future__ import annotations

import datetime as dt
import logging
import re
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import validate_email
from django.db import connection, transaction
from django.utils import timezone

from audit.services import Actor, audit_record
from core.boundary import db_id
from core.identity import email_digest, email_key
from core.tasks import enqueue
from partners.models import DeliveryStatus, WebhookDelivery
from payments import services as payments
from payments.models import GatewayCustomer, WebhookEvent
from storefront.models import (
    Customer,
    Order,
    PrivacyRequest,
    PrivacyRequestChannel,
    PrivacyRequestKind,
    PrivacyRequestState,
)
from storefront.privacy.registry import REGISTRY, Subject, gateway_customer_pseudonym

logger = logging.getLogger(__name__)

TASK = "storefront.privacy_request_process"
_LINK_SALT = "storefront.privacy.link"
LINK_MAX_AGE = 30 * 24 * 3600  # the order page's link to the buyer's data, valid 30 days
# Never exported: bearer secrets (a client secret, single-use nonces, idempotency keys).
_SECRET_FIELD = re.compile(r"(?i)(secret|nonce|idempotency_key|private_key|password|token)")
ERASURE_SETTING = "storefront.erasure"


class PrivacyRequestRefused(ValueError):
    """The request cannot be taken (not an email address); nothing was written."""


# --- requests ------------------------------------------------------------------------------


def privacy_request_create(
    *, email: str, kind: str, channel: str, requested_by: str, actor: Actor | Any
) -> PrivacyRequest:
    """Record a request and queue its processing. The same answer whether or not the store
    knows the address: nothing here looks it up."""
    address = email_key(email or "")
    try:
        if len(address) > 254:  # RFC 5321's limit, and the column's
            raise ValidationError("too long")
        validate_email(address)
    except ValidationError:
        raise PrivacyRequestRefused("Enter a valid email address, like name@example.com.") from None
    if kind not in PrivacyRequestKind.values or channel not in PrivacyRequestChannel.values:
        raise PrivacyRequestRefused(f"unknown request kind {kind!r}")
    with transaction.atomic():
        request = PrivacyRequest.objects.create(
            kind=kind,
            channel=channel,
            email=address,
            email_digest=email_digest(address),
            requested_by=requested_by[:150],
        )
        audit_record(
            request_or_actor=actor,
            action=f"storefront.privacy.{kind}.request",
            obj=request,
            summary=f"{kind.capitalize()} requested through {request.get_channel_display()}",
        )
        enqueue(TASK, request_id=request.pk)
    return request


def privacy_request_process(*, request_id: int) -> PrivacyRequest | None:
    """Run one request. Safe twice: a done request is left as it is; an erasure run again
    finds nothing left to change."""
    request = PrivacyRequest.objects.filter(pk=request_id).first()
    if request is None or request.state == PrivacyRequestState.DONE:
        return request
    try:
        if request.kind == PrivacyRequestKind.EXPORT:
            document = data_export(email=request.email)
            summary = {label: len(rows) for label, rows in document["data"].items() if rows}
            PrivacyRequest.objects.filter(pk=request.pk).exclude(state="done").update(
                state=PrivacyRequestState.DONE,
                done_at=timezone.now(),
                result=document,
                summary=summary,
                error="",
            )
        else:
            data_erase(email=request.email, request=request)
    except Exception as exc:
        PrivacyRequest.objects.filter(pk=request.pk).exclude(state="done").update(
            state=PrivacyRequestState.FAILED, error=f"{type(exc).__name__}"[:300]
        )
        raise
    request.refresh_from_db()
    return request


def privacy_link_token(*, order: Order, schema: str) -> str:
    """The signed link the buyer's order page offers ("your data"): it names the order (and
    so the address it was bought with) and this store, never the address itself."""
    return signing.dumps({"s": schema, "o": order.pk, "t": order.token[:8]}, salt=_LINK_SALT)


def privacy_link_order(*, token: str, schema: str) -> Order | None:
    try:
        data = signing.loads(token, salt=_LINK_SALT, max_age=LINK_MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("s") != schema or db_id(data.get("o")) is None:
        return None
    order = Order.objects.select_related("customer").filter(pk=data["o"]).first()
    if order is None or order.token[:8] != data.get("t") or order.customer.erased_at:
        return None
    return order


# --- export --------------------------------------------------------------------------------


def subject_for(email: str) -> Subject:
    address = email_key(email)
    subject = Subject(email=address, digest=email_digest(address))
    customers = Customer.objects.filter(email__iexact=address)
    subject.customer_ids = list(customers.values_list("pk", flat=True))
    subject.gateway_customer_ids = sorted(
        set(GatewayCustomer.objects.filter(email__iexact=address).values_list("pk", flat=True))
        | set(
            customers.exclude(gateway_customer=None).values_list("gateway_customer_id", flat=True)
        )
    )
    orders = Order.objects.filter(customer_id__in=subject.customer_ids)
    subject.order_ids = list(orders.values_list("pk", flat=True))
    subject.visitor_ids = sorted(
        set(orders.exclude(visitor_id="").values_list("visitor_id", flat=True))
    )
    return subject


def _row(obj) -> dict[str, Any]:
    import json

    values = {
        f.attname: f.value_from_object(obj)
        for f in obj._meta.concrete_fields
        if not _SECRET_FIELD.search(f.name)
    }
    return json.loads(json.dumps(values, cls=DjangoJSONEncoder, default=str))


def data_export(*, email: str) -> dict[str, Any]:
    """Everything the store holds on `email`, one list per registered model. The document has
    the same keys whether or not the address is known."""
    subject = subject_for(email)
    return {
        "email": subject.email,
        "generated_at": timezone.now().isoformat(),
        "store": connection.schema_name,
        "data": {
            label: [_row(obj) for obj in entry.rows(subject).order_by("pk")]
            for label, entry in sorted(REGISTRY.items())
        },
        "kept_on_erasure": {label: entry.kept for label, entry in sorted(REGISTRY.items())},
    }


# --- erasure -------------------------------------------------------------------------------


@contextmanager
def erasure_scope():
    """The one transaction in which the append-only tables' triggers let the personal columns
    change (analytics 0006, audit 0003). SET LOCAL ends with the transaction; it is also
    switched off on the way out, for callers inside a longer one (tests)."""
    with transaction.atomic(durable=True):
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL {ERASURE_SETTING} = 'on'")
        yield
        # On an error the transaction (or the caller's savepoint) rolls back, and a SET LOCAL
        # with it; on success it is switched off before anything else runs in it.
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL {ERASURE_SETTING} = 'off'")


def data_erase(*, email: str, request: PrivacyRequest) -> dict[str, int]:
    """Pseudonymise the buyer everywhere (REGISTRY), keep the books; mark the request done and
    forget its address, in one transaction."""
    subject = subject_for(email)
    changed: dict[str, int] = {}
    # The gateway's copy first, outside any transaction: if the gateway is down the task
    # retries and nothing here has changed yet; setting the same pseudonym again is harmless.
    for customer in GatewayCustomer.objects.filter(pk__in=subject.gateway_customer_ids):
        payments.gateway_customer_redact(
            customer=customer, email=gateway_customer_pseudonym(subject, customer.pk)
        )
    with erasure_scope():
        locked = PrivacyRequest.objects.select_for_update().get(pk=request.pk)
        if locked.state == PrivacyRequestState.DONE:
            return locked.summary
        for label, entry in sorted(REGISTRY.items()):
            if entry.erase is not None:
                count = entry.erase(subject)
                if count:
                    changed[label] = count
        PrivacyRequest.objects.filter(pk=request.pk).update(
            state=PrivacyRequestState.DONE,
            done_at=timezone.now(),
            email="",
            result=None,
            summary=changed,
            error="",
        )
        audit_record(
            request_or_actor=Actor.system("storefront.privacy"),
            action="storefront.privacy.erasure.done",
            obj=locked,
            changes={"changed": changed},
            summary=f"Erasure #{request.pk} done",
        )
    logger.info("privacy erasure %s done: %s", request.pk, changed)
    return changed


# --- retention -----------------------------------------------------------------------------


def retention_prune(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Delete stored gateway webhook events and finished partner deliveries older than their
    retention, and export documents older than PRIVACY_EXPORT_KEEP_DAYS. Safe twice at once
    (plain DELETEs of rows past a cut-off)."""
    now = now or timezone.now()
    events = WebhookEvent.objects.filter(
        processed_at__isnull=False,
        received_at__lt=now - dt.timedelta(days=settings.RETENTION_GATEWAY_WEBHOOK_DAYS),
    ).delete()[0]
    deliveries = WebhookDelivery.objects.filter(
        status__in=[DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED],
        created_at__lt=now - dt.timedelta(days=settings.RETENTION_DELIVERY_LOG_DAYS),
    ).delete()[0]
    exports = (
        PrivacyRequest.objects.filter(
            kind=PrivacyRequestKind.EXPORT,
            done_at__lt=now - dt.timedelta(days=settings.PRIVACY_EXPORT_KEEP_DAYS),
        )
        .exclude(email="", result=None)
        .update(email="", result=None)
    )
    return {"gateway_webhook_events": events, "webhook_deliveries": deliveries, "exports": exports}
