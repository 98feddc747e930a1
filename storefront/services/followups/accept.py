"""Accepting a follow-up offer from its email: the offer page, the one-click charge, its outcome."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.core import signing
from django.db import transaction
from django.utils import timezone

from analytics.models import EventName
from analytics.services import event_append
from core import orderkeys
from core.boundary import db_id
from core.money import Money
from payments import services as payments
from payments.models import AttemptStatus, ChargeAttempt
from storefront.models import OWNED_ORDER_STATUSES, FollowUpSend, FollowUpStatus, LineKind, Order
from storefront.pricing import Jurisdiction, PricedLine, offer_line_price
from storefront.services.followups.common import (
    _ACCEPT_SALT,
    ACCEPT_MAX_AGE,
    FollowUpRefused,
    _email_fields,
    _owns_product,
)
from storefront.services.followups.send import Framing, _checkout_link, _framing
from storefront.services.orders import post_purchase_line_create

logger = logging.getLogger(__name__)


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
    send_id = db_id(data.get("f"))
    send = (
        FollowUpSend.objects.select_related(
            "order__customer", "customer", "offer__product", "attempt"
        )
        .filter(pk=send_id, nonce=str(data.get("n")))
        .first()
        if send_id is not None
        else None
    )
    if send is None:
        raise FollowUpRefused(
            403,
            "This offer link is not valid",
            "We could not find this offer. Nothing was charged.",
        )
    return send


def _price(send: FollowUpSend) -> PricedLine:
    line, _ = offer_line_price(
        kind=LineKind.CROSS_SELL,
        offer=send.offer,
        jurisdiction=Jurisdiction.for_order(send.order),
    )
    return line


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
        if order.status not in OWNED_ORDER_STATUSES:
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
        attempt, _ = payments.attempt_get_or_create(
            purpose=orderkeys.order_purpose(order.pk, LineKind.CROSS_SELL),
            reference=order.reference,
            amount=line.total,
            customer_ref=method.customer.gateway_ref,
            payment_method_ref=method.gateway_ref,
            off_session=True,
            allocation={
                orderkeys.line_key(
                    kind=LineKind.CROSS_SELL, line_id=None, order_id=order.pk
                ): line.total.amount
            },
        )
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
        if not post_purchase_line_create(
            order=order,
            kind=LineKind.CROSS_SELL,
            offer=send.offer,
            frozen=send,
            currency=attempt.currency,
        ):
            logger.error("could not add the cross-sell line to order %s", order.pk)
        event_append(EventName.UPSELL_CHARGED, amount=attempt.amount, **base)
    elif attempt.status in (AttemptStatus.DECLINED, AttemptStatus.CANCELED):
        event_append(
            EventName.UPSELL_FAILED, reason=(attempt.decline_code or "declined")[:100], **base
        )
