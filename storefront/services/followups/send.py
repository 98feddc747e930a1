"""Sending follow-up emails: eligibility, links, the claim and the send, unsubscribing.

Delivery semantics are in the package's docstring (storefront/services/followups/__init__.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing
from django.db import connection, transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from analytics.models import EventName
from analytics.services import event_append
from core.boundary import db_id
from core.loops import each_record, quarantined_pks
from core.mailerrors import MAIL_SERVER_TROUBLE, send_counted
from offers.models import DecisionStatus, OfferDecision, OfferKind
from payments import services as payments
from payments.models import AttemptStatus
from storefront.models import (
    OWNED_ORDER_STATUSES,
    Customer,
    EmailSequence,
    FollowUpSend,
    FollowUpStatus,
    LineKind,
    Order,
    StoreSettings,
)
from storefront.services import mail
from storefront.services.followups.common import (
    _ACCEPT_SALT,
    _UNSUBSCRIBE_SALT,
    FollowUpRefused,
    _core_line,
    _email_fields,
    _owns_product,
)

_TAKEN = (
    AttemptStatus.SUCCEEDED,
    AttemptStatus.PROCESSING,
    AttemptStatus.IN_FLIGHT,
    AttemptStatus.CREATED,
)


def claim_stale_after() -> dt.timedelta:
    return dt.timedelta(minutes=int(getattr(settings, "FOLLOWUP_CLAIM_STALE_MINUTES", 15)))


# --- eligibility ----------------------------------------------------------------------------


def _took_an_offer(order: Order) -> bool:
    """The buyer took the post-purchase offer on this order (charged, or still being charged)."""
    return (
        OfferDecision.objects.filter(
            order=order, status=DecisionStatus.ACCEPTED, attempt__status__in=_TAKEN
        ).exists()
        or order.lines.filter(kind__in=[LineKind.UPSELL, LineKind.DOWNSELL]).exists()
    )


def skip_reason(send: FollowUpSend) -> str:
    """Why this email must not go out now ('' when it may)."""
    if send.sequence == EmailSequence.RECOVERY:
        from storefront.services.followups.recovery import recovery_skip_reason

        return recovery_skip_reason(send)
    order, customer = send.order, send.customer
    if customer.unsubscribed_at is not None:
        return "erased" if customer.erased_at is not None else "unsubscribed"
    if mail.address_suppressed(customer.email):
        return mail.SUPPRESSED  # a hard bounce or a complaint (tenants.mailevents)
    if order.status not in OWNED_ORDER_STATUSES:
        return "order_not_paid"
    if not send.offer.is_active or send.offer.product.status != "active":
        return "offer_inactive"
    if _owns_product(customer.pk, send.offer.product_id):
        return "owns_product"
    if _took_an_offer(order):
        return "took_offer"
    if FollowUpSend.objects.filter(
        customer=customer, offer=send.offer, accepted_at__isnull=False
    ).exists():
        return "accepted_earlier_step"
    return ""


# --- links ---------------------------------------------------------------------------------


def _base_url() -> str:
    tenant = getattr(connection, "tenant", None)
    domain = None
    if tenant is not None and hasattr(tenant, "domains"):
        row = tenant.domains.filter(is_primary=True).first() or tenant.domains.first()
        domain = row.domain if row else None
    scheme = getattr(settings, "STOREFRONT_EMAIL_SCHEME", "https")
    return f"{scheme}://{domain or settings.PLATFORM_DOMAIN}"


def accept_token(*, send: FollowUpSend, schema: str) -> str:
    return signing.dumps({"s": schema, "f": send.pk, "n": send.nonce}, salt=_ACCEPT_SALT)


def unsubscribe_token(*, customer_id: int, schema: str) -> str:
    # No expiry: an unsubscribe link must work however old the email is.
    return signing.dumps({"s": schema, "c": customer_id}, salt=_UNSUBSCRIBE_SALT)


def _checkout_link(send: FollowUpSend) -> str:
    query = urlencode(
        {
            "email": send.customer.email,
            "country": send.order.country,
            "utm_source": "email",
            "utm_medium": "followup",
            "utm_campaign": f"cross_sell-{send.offer_id}-{send.step}",
        }
    )
    return f"{reverse('checkout', args=[send.offer.product.slug])}?{query}"


def _one_click_possible(send: FollowUpSend) -> bool:
    return (
        send.order.card_saved and payments.vault_method_for(email=send.customer.email) is not None
    )


# --- sending -------------------------------------------------------------------------------


def _claim(send_id: int, now: dt.datetime) -> bool:
    """SCHEDULED and due, or SENDING with a stale claim → SENDING, for this caller only."""
    return bool(
        FollowUpSend.objects.filter(pk=send_id)
        .filter(
            Q(status=FollowUpStatus.SCHEDULED, due_at__lte=now)
            | Q(status=FollowUpStatus.SENDING, claimed_at__lt=now - claim_stale_after())
        )
        .update(status=FollowUpStatus.SENDING, claimed_at=now, claims=F("claims") + 1)
    )


@dataclass(frozen=True)
class Framing:
    subject: str
    headline: str
    benefit: str


def _framing(send: FollowUpSend) -> Framing:
    """A different angle from the post-purchase page: what it adds to what they just bought."""
    offer, name = send.offer, send.offer.product.name
    core = _core_line(send.order)
    bought = core.description if core else "your purchase"
    if offer.kind == OfferKind.CROSS_SELL:
        headline = offer.headline
    else:
        headline = f"Get more out of {bought} with {name}"
    if send.step == 1:
        subject = f"{name}: the next step after {bought}"
    else:
        subject = f"Last reminder: {name} for {offer.price}"
    return Framing(subject=subject, headline=headline, benefit=offer.benefit)


def _recovery_message(send: FollowUpSend, schema: str) -> mail.StoreEmail | None:
    """An abandoned-checkout reminder: the same headers, unsubscribe and Message-ID rules."""
    from storefront.services.followups.recovery import recovery_message_context

    base = _base_url()
    unsubscribe = base + reverse(
        "followup-unsubscribe",
        args=[unsubscribe_token(customer_id=send.customer_id, schema=schema)],
    )
    context = {
        "send": send,
        **recovery_message_context(send, schema, base),
        "unsubscribe_url": unsubscribe,
        "store": StoreSettings.current(),
        **mail.brand_context(base_url=base),
    }
    domain = base.split("://", 1)[1]
    message = mail.store_message(
        subject=context["subject"],
        body=render_to_string("storefront/email/recovery.txt", context),
        html=render_to_string("storefront/email/recovery.html", context),
        to=send.customer.email,
        headers={
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Message-ID": f"<followup-{schema}-{send.pk}@{domain}>",
            "X-Followup-Id": f"{schema}:{send.pk}",
        },
    )
    send.link_kind = "checkout"
    return message


def _message(send: FollowUpSend, schema: str) -> mail.StoreEmail | None:
    if send.sequence == EmailSequence.RECOVERY:
        return _recovery_message(send, schema)
    base = _base_url()
    one_click = _one_click_possible(send)
    link = (
        base + reverse("followup-offer", args=[accept_token(send=send, schema=schema)])
        if one_click
        else base + _checkout_link(send)
    )
    unsubscribe = base + reverse(
        "followup-unsubscribe",
        args=[unsubscribe_token(customer_id=send.customer_id, schema=schema)],
    )
    framing = _framing(send)
    context = {
        "send": send,
        "offer": send.offer,
        "framing": framing,
        "link": link,
        "one_click": one_click,
        "unsubscribe_url": unsubscribe,
        "store": StoreSettings.current(),
        **mail.brand_context(base_url=base),
    }
    domain = base.split("://", 1)[1]
    message = mail.store_message(
        subject=framing.subject,
        body=render_to_string("storefront/email/followup.txt", context),
        html=render_to_string("storefront/email/followup.html", context),
        to=send.customer.email,
        headers={
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",  # RFC 8058
            # Stable across retries: the receiver can collapse an at-least-once duplicate.
            "Message-ID": f"<followup-{schema}-{send.pk}@{domain}>",
            "X-Followup-Id": f"{schema}:{send.pk}",
        },
    )
    send.link_kind = "accept" if one_click else "checkout"
    return message


def followup_send(*, send_id: int, now: dt.datetime | None = None) -> bool:
    """Send one follow-up if it is due and still wanted. True only for the caller that sent it.

    Safe to run twice and concurrently: only the caller whose conditional UPDATE claimed the
    row sends. A failed send hands the row back to SCHEDULED and re-raises: SMTP errors
    (OSError) for the task's retry with backoff, anything else for followups_send_due's loop
    to count (and quarantine) against the row.
    """
    now = now or timezone.now()
    schema = connection.schema_name
    with transaction.atomic():
        if not _claim(send_id, now):
            return False
        send = FollowUpSend.objects.select_related(
            "order", "customer", "offer__product", "product"
        ).get(pk=send_id)
        reason = skip_reason(send)
        if reason:
            FollowUpSend.objects.filter(pk=send_id).update(
                status=FollowUpStatus.SKIPPED, skipped_reason=reason
            )
            return False
        message = _message(send, schema)
        if message is None:  # suppressed since skip_reason looked
            FollowUpSend.objects.filter(pk=send_id).update(
                status=FollowUpStatus.SKIPPED, skipped_reason=mail.SUPPRESSED
            )
            return False
    # The claim is committed: a duplicate task, or this one retried, finds nothing to claim.
    try:
        message.send(fail_silently=False)
    except Exception:  # SMTP errors, and an address that cannot be sent to: hand it back
        FollowUpSend.objects.filter(
            pk=send_id, status=FollowUpStatus.SENDING, claimed_at=now
        ).update(status=FollowUpStatus.SCHEDULED)
        raise
    with transaction.atomic():
        FollowUpSend.objects.filter(pk=send_id, status=FollowUpStatus.SENDING).update(
            status=FollowUpStatus.SENT, sent_at=timezone.now(), link_kind=send.link_kind
        )
        recovery = send.sequence == EmailSequence.RECOVERY
        event_append(
            EventName.EMAIL_SENT,
            offer_id=send.offer_id,
            product_id=send.product_id if recovery else send.offer.product_id,
            properties={
                "sequence": send.sequence,
                "step": send.step,
                "link": send.link_kind,
                "followup_id": send.pk,
            },
            **_email_fields(send.order, send.step, sequence=send.sequence),
        )
    return True


LOOP_FOLLOWUPS = "storefront.followups"


def _send_counted(send_id: int, now: dt.datetime) -> bool:
    """followup_send for the loop: a permanent refusal of this email counts against its row;
    the mail server's trouble (any other OSError) stops the run and the task retries."""
    return send_counted(followup_send, send_id=send_id, now=now)


def followups_due(*, now: dt.datetime | None = None, limit: int = 200) -> list[int]:
    now = now or timezone.now()
    return list(
        FollowUpSend.objects.filter(
            Q(status=FollowUpStatus.SCHEDULED, due_at__lte=now)
            | Q(status=FollowUpStatus.SENDING, claimed_at__lt=now - claim_stale_after())
        )
        .exclude(pk__in=quarantined_pks(LOOP_FOLLOWUPS))
        .order_by("due_at")
        .values_list("pk", flat=True)[:limit]
    )


def followups_send_due(*, now: dt.datetime | None = None, limit: int = 200) -> int:
    """Periodic: send every due follow-up (and retry stale claims). Safe to run concurrently.
    One email that fails is recorded and skipped (core/loops.py), quarantined after
    LOOP_QUARANTINE_AFTER runs; an unreachable mail server stops the run for the retry."""
    now = now or timezone.now()
    run = each_record(
        LOOP_FOLLOWUPS,
        followups_due(now=now, limit=limit),
        lambda send_id: _send_counted(send_id, now),
        label=lambda send_id: f"follow-up email {send_id}",
        stop_on=MAIL_SERVER_TROUBLE,
    )
    return sum(1 for sent in run.results if sent)


# --- unsubscribe ---------------------------------------------------------------------------


def customer_unsubscribe(*, signed: str, schema: str) -> Customer:
    """Honoured at once: the next send's check sees it. Safe to click twice."""
    try:
        data = signing.loads(signed or "", salt=_UNSUBSCRIBE_SALT)
    except signing.BadSignature as exc:
        raise FollowUpRefused(
            400,
            "This unsubscribe link is not valid",
            "We could not verify this link. Reply to any of our emails "
            "and we will unsubscribe you by hand.",
        ) from exc
    if not isinstance(data, dict) or data.get("s") != schema:
        raise FollowUpRefused(
            400,
            "This unsubscribe link is for another store",
            "This link does not belong to this store.",
        )
    customer_id = db_id(data.get("c"))
    customer = Customer.objects.filter(pk=customer_id).first() if customer_id else None
    if customer is None:
        raise FollowUpRefused(404, "Nothing to unsubscribe", "We have no emails for you.")
    with transaction.atomic():
        Customer.objects.filter(pk=customer.pk, unsubscribed_at__isnull=True).update(
            unsubscribed_at=timezone.now()
        )
        FollowUpSend.objects.filter(customer=customer, status=FollowUpStatus.SCHEDULED).update(
            status=FollowUpStatus.SKIPPED, skipped_reason="unsubscribed"
        )
    customer.refresh_from_db()
    return customer
