"""Coupon uses held by checkouts that were never paid, given back after COUPON_HOLD_MINUTES.

A checkout with a limited coupon takes one of its uses when it starts (offers.coupons). A
buyer who leaves would hold it forever; beat runs `coupon_holds_release` every few minutes.
It races with the buyer's Pay, and both take the order's row lock: the release gives the use
back only while the order is still pending, past the hold time and without a committed
charge attempt (checkout_pay commits its attempt under the same lock), and its UPDATE matches
only a redemption not released and of an order with no paid_at, so a paid order's use is
never given back. A Pay that comes after the release takes the use again within the limits
(offers.coupons.coupon_reclaim) or is refused with the reason before anything is charged.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.loops import each_record, quarantined_pks
from offers.coupons import CouponRefused, coupon_reclaim, coupon_release
from offers.models import CouponRedemption
from storefront import selectors
from storefront.models import Customer, Order, OrderStatus
from storefront.services.orders import order_status_move

LOOP = "storefront.coupon_holds_release"
BATCH = 500


def hold_time() -> dt.timedelta:
    return dt.timedelta(minutes=int(getattr(settings, "COUPON_HOLD_MINUTES", 60)))


def coupon_holds_release(*, now: dt.datetime | None = None) -> int:
    """Give back the uses held by checkouts left unpaid past the hold time; how many."""
    cutoff = (now or timezone.now()) - hold_time()
    order_ids = list(
        CouponRedemption.objects.filter(
            released_at=None, order__status=OrderStatus.PENDING, order__created_at__lt=cutoff
        )
        .exclude(order_id__in=quarantined_pks(LOOP))
        .order_by("order_id")
        .values_list("order_id", flat=True)[:BATCH]
    )
    run = each_record(
        LOOP,
        order_ids,
        lambda order_id: coupon_hold_release(order_id=order_id, cutoff=cutoff),
        label=lambda order_id: f"coupon held by checkout {order_id}",
    )
    return sum(1 for released in run.results if released)


def coupon_hold_release(*, order_id: int, cutoff: dt.datetime) -> bool:
    """One checkout's held use, under the order's lock (see the module's docstring)."""
    with transaction.atomic():
        order = (
            Order.objects.select_for_update()
            .filter(pk=order_id, status=OrderStatus.PENDING, created_at__lt=cutoff)
            .first()
        )
        if order is None:
            return False
        if selectors.order_primary_attempt(order_id=order.pk) is not None:
            return False  # the buyer's Pay committed its charge first: the use is theirs
        return coupon_release(order_id=order.pk, unless_paid=True)


def coupon_hold_reclaim(*, order_id: int) -> bool:
    """In checkout_pay, under the order's lock, before the charge attempt: take back a use
    this checkout gave back, or refuse (CouponRefused) with what to do."""
    try:
        return coupon_reclaim(order_id=order_id)
    except CouponRefused as exc:
        raise CouponRefused(
            exc.code,
            f"{exc.message} This checkout was left open too long to keep it for you; "
            "please start again.",
        ) from exc


def coupon_hold_supersede(*, customer: Customer, coupon_id: int) -> None:
    """The buyer starts a new checkout with a coupon an earlier checkout of theirs still holds
    (they closed the tab, or came back from a reminder): that checkout, if nothing was sent to
    the gateway for it, is closed and gives its use back, so the per-buyer limit counts
    purchases, not attempts. Locks the old order first: its Pay (checkout_pay) takes the same
    lock before it commits a charge attempt, so one of the two wins."""
    held = CouponRedemption.objects.filter(
        customer=customer, coupon_id=coupon_id, released_at=None, order__status=OrderStatus.PENDING
    ).values_list("order_id", flat=True)
    for old in Order.objects.select_for_update().filter(
        pk__in=list(held), status=OrderStatus.PENDING
    ):
        if selectors.order_primary_attempt(order_id=old.pk) is None:
            order_status_move(order=old, to=OrderStatus.FAILED)
