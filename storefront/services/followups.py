"""Follow-up cross-sell emails: scheduled when an order is paid, sent at most twice per offer.

Which offer: the creator's cross-sell offer for the core product if there is one, else the
order's upsell offer, reframed for email (a trimmed message: one headline, one benefit, the
price, one button). Steps go out `Offer.followup_delays_hours` after payment (default 24 h
and 72 h).

Delivery semantics. Each (customer, offer, step) is one FollowUpSend row, created when the
order is paid (the database holds the cap). A worker claims a due row with one conditional
UPDATE (SCHEDULED → SENDING) and commits the claim *before* talking to SMTP; a duplicated or
retried task finds nothing to claim and sends nothing. After the SMTP server accepts the
message the row becomes SENT. If the worker dies between the claim and that UPDATE, the row
stays SENDING; the periodic job claims rows SENDING for longer than
FOLLOWUP_CLAIM_STALE_MINUTES (default 15) again and sends them. So email is
**at-least-once**: a crash in the milliseconds after SMTP accepted the message and before the
UPDATE committed would send it twice. We chose that over at-most-once (never retrying a
claim) because a killed worker would otherwise silently lose the email; the message carries
a stable Message-ID (`<followup-<schema>-<row id>@…>`) so a receiving server or client can
collapse such a duplicate. Everything short of that window sends exactly once.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import smtplib
from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from analytics.models import EventName
from analytics.services import event_append
from core import orderkeys
from core.loops import each_record, quarantined_pks
from core.money import Money
from offers.models import DecisionStatus, Offer, OfferDecision, OfferKind
from offers.selectors import upsell_for_product
from payments import services as payments
from payments.models import AttemptStatus, ChargeAttempt
from storefront.models import (
    Customer,
    FollowUpSend,
    FollowUpStatus,
    LineKind,
    Order,
    OrderLine,
    OrderStatus,
    StoreSettings,
)
from storefront.pricing import Jurisdiction, price_line, tax_rate_for
from storefront.services.errors import BuyerRefused
from storefront.services.orders import event_fields_for

logger = logging.getLogger(__name__)

DEFAULT_DELAYS_HOURS = (24, 72)
MAX_STEPS = 2
_ACCEPT_SALT = "storefront.followup.accept"
_UNSUBSCRIBE_SALT = "storefront.followup.unsubscribe"
ACCEPT_MAX_AGE = 14 * 24 * 3600  # an email's accept link works for two weeks
_OWNED = (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED)
_TAKEN = (
    AttemptStatus.SUCCEEDED,
    AttemptStatus.PROCESSING,
    AttemptStatus.IN_FLIGHT,
    AttemptStatus.CREATED,
)


def claim_stale_after() -> dt.timedelta:
    return dt.timedelta(minutes=int(getattr(settings, "FOLLOWUP_CLAIM_STALE_MINUTES", 15)))


class FollowUpRefused(BuyerRefused):
    """A refused accept or unsubscribe, with an HTTP status and a message for the buyer."""


# --- which offer, when ----------------------------------------------------------------------


def _core_line(order: Order) -> OrderLine | None:
    return order.lines.filter(kind=LineKind.CORE).first()


def followup_offer_for(*, order: Order) -> Offer | None:
    """The cross-sell offer for the order's core product, else its upsell offer (reframed)."""
    core = _core_line(order)
    if core is None:
        return None
    cross_sell = (
        Offer.objects.select_related("product")
        .filter(
            kind=OfferKind.CROSS_SELL,
            trigger_product_id=core.product_id,
            status=Offer.Status.ACTIVE,
            product__status="active",
            currency=order.currency,
        )
        .order_by("pk")
        .first()
    )
    if cross_sell is not None:
        return cross_sell
    upsell = upsell_for_product(product_id=core.product_id)
    return upsell if upsell is not None and upsell.currency == order.currency else None


def followup_delays(offer: Offer) -> list[dt.timedelta]:
    """The offer's configured delays (hours after payment), else 24 h and 72 h."""
    raw = offer.followup_delays_hours or []
    try:
        hours = [float(h) for h in raw][:MAX_STEPS]
    except (TypeError, ValueError):
        hours = []
    if not hours or any(h <= 0 for h in hours):
        hours = list(DEFAULT_DELAYS_HOURS)
    return [dt.timedelta(hours=h) for h in sorted(hours)]


def followups_schedule(*, order: Order, paid_at: dt.datetime | None = None) -> int:
    """Record the follow-up rows for a paid order (inside the payment's transaction).

    Never raises: it runs while a real payment is being recorded. A customer who already has a
    sequence for the offer (an earlier order) gets no second one: the unique row refuses it.
    """
    try:
        with transaction.atomic():
            offer = followup_offer_for(order=order)
            if offer is None:
                return 0
            base = paid_at or order.paid_at or timezone.now()
            rows = [
                FollowUpSend(
                    customer_id=order.customer_id,
                    order=order,
                    offer=offer,
                    step=i,
                    due_at=base + delay,
                    nonce=secrets.token_hex(16),
                )
                for i, delay in enumerate(followup_delays(offer), start=1)
            ]
            created = FollowUpSend.objects.bulk_create(rows, ignore_conflicts=True)
            return len([r for r in created if r.pk])
    except Exception:  # never undo the payment's recording for an email
        logger.exception("could not schedule follow-ups for order %s", order.pk)
        return 0


# --- eligibility ----------------------------------------------------------------------------


def _owns_product(customer_id: int, product_id: int) -> bool:
    """Bought anywhere on the ladder: as a core product, bump, upsell, downsell or cross-sell."""
    return OrderLine.objects.filter(
        product_id=product_id, order__customer_id=customer_id, order__status__in=_OWNED
    ).exists()


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
    order, customer = send.order, send.customer
    if customer.unsubscribed_at is not None:
        return "unsubscribed"
    if order.status not in _OWNED:
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


def _message(send: FollowUpSend, schema: str) -> EmailMultiAlternatives:
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
    }
    domain = base.split("://", 1)[1]
    message = EmailMultiAlternatives(
        subject=framing.subject,
        body=render_to_string("storefront/email/followup.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[send.customer.email],
        headers={
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",  # RFC 8058
            # Stable across retries: the receiver can collapse an at-least-once duplicate.
            "Message-ID": f"<followup-{schema}-{send.pk}@{domain}>",
            "X-Followup-Id": f"{schema}:{send.pk}",
        },
    )
    message.attach_alternative(
        render_to_string("storefront/email/followup.html", context), "text/html"
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
        send = FollowUpSend.objects.select_related("order", "customer", "offer__product").get(
            pk=send_id
        )
        reason = skip_reason(send)
        if reason:
            FollowUpSend.objects.filter(pk=send_id).update(
                status=FollowUpStatus.SKIPPED, skipped_reason=reason
            )
            return False
        message = _message(send, schema)
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
        event_append(
            EventName.EMAIL_SENT,
            offer_id=send.offer_id,
            product_id=send.offer.product_id,
            properties={
                "sequence": "cross_sell",
                "step": send.step,
                "link": send.link_kind,
                "followup_id": send.pk,
            },
            **_email_fields(send.order, send.step),
        )
    return True


def _email_fields(order: Order, step: int) -> dict:
    return {
        **event_fields_for(order),
        "source": "email",
        "medium": "followup",
        "campaign": f"cross_sell:{step}",
    }


LOOP_FOLLOWUPS = "storefront.followups"


class UndeliverableEmail(ValueError):
    """The server refused this one message for good (a 5xx for its recipient or content)."""


def _send_counted(send_id: int, now: dt.datetime) -> bool:
    """followup_send for the loop. Every OSError is the mail server's (unreachable, bad login,
    a 4xx "try later"): it stops the run, counts against no email, and the task retries; only
    a permanent refusal of this message is counted against its row, as any other error is."""
    try:
        return followup_send(send_id=send_id, now=now)
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError) as exc:
        if isinstance(exc, smtplib.SMTPRecipientsRefused):  # every recipient was refused
            code = min((c for c, _ in exc.recipients.values()), default=550)
        else:
            code = exc.smtp_code
        if code < 500:
            raise
        raise UndeliverableEmail(f"the mail server refused this email: {exc}") from exc


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
        LOOP_FOLLOWUPS, followups_due(now=now, limit=limit),
        lambda send_id: _send_counted(send_id, now),
        label=lambda send_id: f"follow-up email {send_id}", stop_on=(OSError,),
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
    customer = Customer.objects.filter(pk=data.get("c")).first()
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


# --- accepting from the email ----------------------------------------------------------------


@dataclass(frozen=True)
class FollowUpOffer:
    send: FollowUpSend
    framing: Framing
    total: Money
    tax: Money
    token: str
    stage: str  # "offer", "charged", "failed", "pending"
    message: str = ""
    checkout_url: str = ""


def _send_for(signed: str, schema: str) -> FollowUpSend:
    try:
        data = signing.loads(signed or "", salt=_ACCEPT_SALT, max_age=ACCEPT_MAX_AGE)
    except signing.SignatureExpired as exc:
        raise FollowUpRefused(
            410,
            "This offer has expired",
            "This email offer is no longer open. Nothing was charged.",
        ) from exc
    except signing.BadSignature as exc:
        raise FollowUpRefused(
            403,
            "This offer link is not valid",
            "We could not verify this link. Nothing was charged.",
        ) from exc
    if not isinstance(data, dict) or data.get("s") != schema:
        raise FollowUpRefused(
            403,
            "This offer is for another store",
            "This link does not belong to this store. Nothing was charged.",
        )
    send = (
        FollowUpSend.objects.select_related(
            "order__customer", "customer", "offer__product", "attempt"
        )
        .filter(pk=data.get("f"), nonce=str(data.get("n")))
        .first()
    )
    if send is None:
        raise FollowUpRefused(
            403,
            "This offer link is not valid",
            "We could not find this offer. Nothing was charged.",
        )
    return send


def _price(send: FollowUpSend):
    rate, _ = tax_rate_for(Jurisdiction(send.order.country, send.order.region))
    return price_line(
        kind=LineKind.CROSS_SELL,
        product=send.offer.product,
        price=send.offer.price,
        offer_id=send.offer_id,
        description=send.offer.product.name,
        rate=rate,
        inclusive=StoreSettings.current().prices_include_tax,
    )


def followup_offer_view(*, signed: str, schema: str) -> FollowUpOffer:
    """What the email's link shows: the offer with its tax, or where its charge stands."""
    send = _send_for(signed, schema)
    line = _price(send)
    stage, message = "offer", ""
    if send.attempt is not None:
        status = send.attempt.status
        if status == AttemptStatus.SUCCEEDED:
            stage, message = "charged", f"{send.offer.product.name} was added to your order."
        elif status in (
            AttemptStatus.DECLINED,
            AttemptStatus.REQUIRES_ACTION,
            AttemptStatus.CANCELED,
        ):
            stage, message = (
                "failed",
                (
                    "Your bank did not approve the one-click payment, so nothing was charged. "
                    "You can buy it with your card on the checkout page."
                ),
            )
        else:
            stage, message = "pending", "Your payment is being processed."
    elif _owns_product(send.customer_id, send.offer.product_id):
        stage, message = "owned", f"You already own {send.offer.product.name}."
    return FollowUpOffer(
        send=send,
        framing=_framing(send),
        total=line.total,
        tax=line.tax,
        token=signed,
        stage=stage,
        message=message,
        checkout_url=_checkout_link(send),
    )


def followup_accept(*, signed: str, schema: str) -> FollowUpSend:
    """One-click accept from the email: commit the attempt, then charge the vaulted card once.

    The charge is unique per order (purpose "order:<id>:cross_sell"), so clicking step 1's and
    step 2's links, twice each, concurrently, makes one charge.
    """
    send = _send_for(signed, schema)
    order = send.order
    with transaction.atomic():
        # Step 1's and step 2's links name different rows: lock the order, so concurrent
        # accepts of either queue here and all but the first see it accepted (a 409, not a
        # unique-attempt IntegrityError).
        Order.objects.select_for_update().filter(pk=order.pk).first()
        locked = FollowUpSend.objects.select_for_update().get(pk=send.pk)
        if (
            locked.accepted_at is not None
            or FollowUpSend.objects.filter(order=order, accepted_at__isnull=False).exists()
        ):
            raise FollowUpRefused(
                409, "Already added", "You already accepted this offer; it is charged only once."
            )
        if _owns_product(order.customer_id, send.offer.product_id):
            raise FollowUpRefused(
                409,
                "You already own this",
                f"You already own {send.offer.product.name}. Nothing was charged.",
            )
        if order.status not in _OWNED:
            raise FollowUpRefused(
                409,
                "This order is not paid",
                "We cannot add to an unpaid or refunded order. Nothing was charged.",
            )
        if not send.offer.is_active:
            raise FollowUpRefused(410, "This offer has ended", "This offer is no longer available.")
        method = payments.vault_method_for(email=order.customer.email)
        if method is None or not order.card_saved:
            raise FollowUpRefused(
                409,
                "No saved card",
                "There is no saved card for one-click offers. Nothing was "
                "charged; you can buy it on the checkout page.",
            )
        line = _price(send)
        try:
            with transaction.atomic():
                attempt, _ = payments.attempt_get_or_create(
                    purpose=orderkeys.order_purpose(order.pk, LineKind.CROSS_SELL),
                    reference=order.reference,
                    amount=line.total,
                    customer_ref=method.customer.gateway_ref,
                    payment_method_ref=method.gateway_ref,
                    off_session=True,
                    allocation={orderkeys.line_key(kind=LineKind.CROSS_SELL, line_id=None,
                                                   order_id=order.pk): line.total.amount},
                )
        except IntegrityError as exc:  # pragma: no cover - attempt_get_or_create absorbs it
            raise FollowUpRefused(409, "Already added", "This offer was already taken.") from exc
        now = timezone.now()
        FollowUpSend.objects.filter(pk=send.pk).update(
            accepted_at=now,
            attempt=attempt,
            net_amount=line.net.amount,
            tax_amount=line.tax.amount,
            total_amount=line.total.amount,
            tax_rate=line.rate,
            tax_inclusive=line.inclusive,
        )
        # Later steps of this sequence are moot now.
        FollowUpSend.objects.filter(
            customer=order.customer, offer=send.offer, status=FollowUpStatus.SCHEDULED
        ).update(status=FollowUpStatus.SKIPPED, skipped_reason="accepted_earlier_step")
        event_append(
            EventName.UPSELL_ACCEPTED,
            offer_id=send.offer_id,
            product_id=send.offer.product_id,
            amount=line.total.amount,
            properties={"kind": "cross_sell", "step": send.step, "followup_id": send.pk},
            **_email_fields(order, send.step),
        )
    payments.attempt_execute(attempt_id=attempt.pk)  # outside the transaction, once
    send.refresh_from_db()
    return send


def on_cross_sell_outcome(*, order: Order, attempt: ChargeAttempt) -> None:
    """Called by orders.on_attempt_outcome inside the recording transaction. Never raises."""
    send = FollowUpSend.objects.select_related("offer__product").filter(attempt=attempt).first()
    if send is None:
        logger.error("cross-sell attempt %s has no follow-up", attempt.purpose)
        return
    base = {
        "offer_id": send.offer_id,
        "product_id": send.offer.product_id,
        "properties": {"kind": "cross_sell", "step": send.step},
        **_email_fields(order, send.step),
    }
    if attempt.status == AttemptStatus.SUCCEEDED:
        try:
            with transaction.atomic():
                OrderLine.objects.create(
                    order=order,
                    kind=LineKind.CROSS_SELL,
                    product_id=send.offer.product_id,
                    offer_id=send.offer_id,
                    description=send.offer.product.name,
                    net_amount=send.net_amount,
                    tax_amount=send.tax_amount,
                    total_amount=send.total_amount,
                    currency=attempt.currency,
                    tax_rate=send.tax_rate,
                    tax_inclusive=bool(send.tax_inclusive),
                    tax_country=order.country,
                    tax_region=order.region,
                )
        except IntegrityError:
            logger.error("could not add the cross-sell line to order %s", order.pk)
        event_append(EventName.UPSELL_CHARGED, amount=attempt.amount, **base)
    elif attempt.status in (AttemptStatus.DECLINED, AttemptStatus.CANCELED):
        event_append(
            EventName.UPSELL_FAILED, reason=(attempt.decline_code or "declined")[:100], **base
        )
