"""What the follow-up modules share: the links' salts, the refusal, ownership, event fields."""

from __future__ import annotations

from storefront.models import OWNED_ORDER_STATUSES, LineKind, Order, OrderLine
from storefront.services.errors import BuyerRefused
from storefront.services.orders import event_fields_for

_ACCEPT_SALT = "storefront.followup.accept"
_UNSUBSCRIBE_SALT = "storefront.followup.unsubscribe"
ACCEPT_MAX_AGE = 14 * 24 * 3600  # an email's accept link works for two weeks


class FollowUpRefused(BuyerRefused):
    """A refused accept or unsubscribe, with an HTTP status and a message for the buyer."""


def _core_line(order: Order) -> OrderLine | None:
    return order.lines.filter(kind=LineKind.CORE).first()


def _owns_product(customer_id: int, product_id: int) -> bool:
    """Bought anywhere on the ladder: as a core product, bump, upsell, downsell or cross-sell."""
    return OrderLine.objects.filter(
        product_id=product_id,
        order__customer_id=customer_id,
        order__status__in=OWNED_ORDER_STATUSES,
    ).exists()


def _email_fields(order: Order, step: int, *, sequence: str = "cross_sell") -> dict:
    return {
        **event_fields_for(order),
        "source": "email",
        "medium": "recovery" if sequence == "recovery" else "followup",
        "campaign": f"{sequence}:{step}",
    }
