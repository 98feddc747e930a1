"""Which follow-up offer an order gets, and when its emails are due: scheduled when it is paid."""

from __future__ import annotations

import datetime as dt
import logging
import secrets

from django.db import transaction
from django.utils import timezone

from core.fixedsql import FixedQuery
from offers.models import Offer, OfferKind
from offers.selectors import upsell_for_product
from storefront.models import FollowUpSend, LineKind, Order, OrderLine
from storefront.services.followups.common import _core_line

logger = logging.getLogger(__name__)

DEFAULT_DELAYS_HOURS = (24, 72)
MAX_STEPS = 2

_CROSS_SELL = FixedQuery(
    Offer,
    lambda product_id, currency: (
        Offer.objects.select_related("product")
        .filter(
            kind=OfferKind.CROSS_SELL,
            trigger_product_id=product_id,
            status=Offer.Status.ACTIVE,
            product__status="active",
            currency=currency,
        )
        .order_by("pk")
    ),
)


def followup_offer_for(*, order: Order, lines: list[OrderLine] | None = None) -> Offer | None:
    """The cross-sell offer for the order's core product, else its upsell offer (reframed).
    `lines`: the order's lines when the caller has read them already (no second read)."""
    if lines is None:
        core = _core_line(order)
    else:
        core = min((x for x in lines if x.kind == LineKind.CORE), key=lambda x: x.pk, default=None)
    if core is None:
        return None
    cross_sell = _CROSS_SELL.first(int(core.product_id), str(order.currency))
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


def followups_schedule(
    *, order: Order, paid_at: dt.datetime | None = None, lines: list[OrderLine] | None = None
) -> int:
    """Record the follow-up rows for a paid order (inside the payment's transaction).

    Never raises: it runs while a real payment is being recorded. A customer who already has a
    sequence for the offer (an earlier order) gets no second one: the unique row refuses it.
    """
    try:
        with transaction.atomic():
            offer = followup_offer_for(order=order, lines=lines)
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
