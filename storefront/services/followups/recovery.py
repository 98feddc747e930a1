"""Abandoned-checkout reminders: the follow-up machinery's second sequence.

A buyer who gave their email at checkout, ticked the reminder box there (REMINDER_TEXT), and
did not pay gets up to two reminders (the store's `recovery_delays_hours`, default 1 h and
24 h after the checkout) linking back to the same checkout, prefilled, optionally with the
store's reminder coupon. They are FollowUpSend rows (`sequence="recovery"`), so they are
claimed, sent, retried and unsubscribed exactly as the cross-sell follow-ups are, by the same
periodic job (`storefront.followups_send_due`), and the database holds the same cap: one row
per buyer, product and step, so at most two reminders per buyer and product however many
checkouts they leave. Paying stops them (a reminder falling due for a product the buyer now
owns is skipped as "purchased"); so does an unsubscribe (its rows are skipped at once).

The link is signed (schema, row, nonce) and opens a redirect to the prefilled checkout; the
new order records which checkout it recovered (`Order.recovered_from`), which is what the
dashboard counts.
"""

from __future__ import annotations

import datetime as dt
import secrets
from urllib.parse import urlencode

from django.core import signing
from django.urls import reverse

from core.boundary import db_id
from storefront.models import (
    OWNED_ORDER_STATUSES,
    EmailSequence,
    FollowUpSend,
    LineKind,
    Order,
    OrderLine,
    Product,
    StoreSettings,
)
from storefront.services.errors import BuyerRefused

_RECOVERY_SALT = "storefront.recovery"
RECOVERY_MAX_AGE = 30 * 24 * 3600  # a reminder's link works for thirty days
DEFAULT_RECOVERY_HOURS = (1, 24)


def recovery_delays(store: StoreSettings) -> list[dt.timedelta]:
    """The store's delays (hours after the checkout), else 1 h and 24 h; at most two."""
    raw = store.recovery_delays_hours or []
    try:
        hours = [float(h) for h in raw][:2]
    except (TypeError, ValueError):
        hours = []
    if not hours or any(h <= 0 for h in hours):
        hours = list(DEFAULT_RECOVERY_HOURS)
    return [dt.timedelta(hours=h) for h in sorted(hours)]


def reminders_schedule(*, order: Order, product: Product, store: StoreSettings) -> int:
    """The reminder rows for a checkout just started (in its transaction). A buyer who already
    has reminders for this product (an earlier checkout) gets no more: the rows are refused."""
    base = order.created_at
    rows = [
        FollowUpSend(
            sequence=EmailSequence.RECOVERY,
            customer_id=order.customer_id,
            order=order,
            product=product,
            step=step,
            due_at=base + delay,
            nonce=secrets.token_hex(16),
        )
        for step, delay in enumerate(recovery_delays(store), start=1)
    ]
    created = FollowUpSend.objects.bulk_create(rows, ignore_conflicts=True)
    return len([r for r in created if r.pk])


def recovery_skip_reason(send: FollowUpSend) -> str:
    """Why this reminder must not go out now ('' when it may)."""
    if send.customer.unsubscribed_at is not None:
        return "unsubscribed"
    if not send.order.reminder_consent:
        return "no_consent"
    if send.order.status in OWNED_ORDER_STATUSES:
        return "purchased"
    if OrderLine.objects.filter(
        product_id=send.product_id,
        order__customer_id=send.customer_id,
        order__status__in=OWNED_ORDER_STATUSES,
    ).exists():
        return "purchased"
    if not StoreSettings.current().recovery_enabled:
        return "recovery_off"
    if send.product.status != Product.Status.ACTIVE:
        return "product_unavailable"
    return ""


def recovery_token(*, send: FollowUpSend, schema: str) -> str:
    return signing.dumps({"s": schema, "r": send.pk, "n": send.nonce}, salt=_RECOVERY_SALT)


def _send_for(signed: str, schema: str) -> FollowUpSend | None:
    try:
        data = signing.loads(signed or "", salt=_RECOVERY_SALT, max_age=RECOVERY_MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("s") != schema or db_id(data.get("r")) is None:
        return None
    return (
        FollowUpSend.objects.select_related("order", "customer", "product")
        .filter(pk=data["r"], nonce=str(data.get("n", "")), sequence=EmailSequence.RECOVERY)
        .first()
    )


def recovery_order_id(*, signed: str, schema: str) -> int | None:
    """The abandoned checkout a reminder link came from (None for no link or a bad one)."""
    if not signed:
        return None
    send = _send_for(signed, schema)
    return send.order_id if send is not None else None


class RecoveryRefused(BuyerRefused):
    """A reminder link that cannot be followed, with a status and a message for the buyer."""


def recovery_checkout_url(*, signed: str, schema: str) -> str:
    """Where a reminder's link leads: the same checkout, prefilled (email, place, bump), with
    the store's reminder coupon if it has one (else the coupon the buyer had applied), and the
    signed link kept so the new order records what it recovered."""
    send = _send_for(signed, schema)
    if send is None:
        raise RecoveryRefused(
            400,
            "This link is not valid",
            "We could not verify this link. Open the store to start a new checkout.",
        )
    order = send.order
    store = StoreSettings.current()
    coupon = store.recovery_coupon.code if store.recovery_coupon_id else order.coupon_code
    query = {
        "email": send.customer.email,
        "country": order.country,
        "region": order.region,
        "remind": "on",  # they agreed at this checkout; they may untick it
        "recovery": signed,
        "utm_source": "email",
        "utm_medium": "recovery",
        "utm_campaign": f"recovery-{send.step}",
    }
    if order.lines.filter(kind=LineKind.BUMP).exists():
        query["bump"] = "1"
    if coupon:
        query["coupon"] = coupon
    return f"{reverse('checkout', args=[send.product.slug])}?{urlencode(query)}"


def recovery_message_context(send: FollowUpSend, schema: str, base: str) -> dict:
    store = StoreSettings.current()
    coupon = store.recovery_coupon if store.recovery_coupon_id else None
    name = send.product.name
    subject = (
        f"You left {name} in your checkout"
        if send.step == 1
        else f"Last reminder: {name} is still waiting for you"
    )
    return {
        "subject": subject,
        "product": send.product,
        "coupon": coupon,
        "link": base + reverse("checkout-recover", args=[recovery_token(send=send, schema=schema)]),
    }
