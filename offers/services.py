"""Offer rules that write: pricing guardrails, pausing."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.money import Money, percent_of
from offers.models import ADDON_HARD_LIMIT, ADDON_SWEET_SPOT, Offer


@dataclass(frozen=True)
class PriceCheck:
    percent_of_core: Decimal
    percent_of_cart: Decimal
    warning: str  # outside the 10–30% sweet spot
    refusal: str  # above 50% of the cart without an explicit override


def offer_price_check(*, offer_price: Money, core_price: Money, cart_total: Money | None = None,
                      allow_high_price: bool = False) -> PriceCheck:
    """Guardrails from the strategy article: add-ons at 10–30% of the core product convert and
    keep trust; above 50% of the cart, anchoring fails and refunds rise."""
    of_core = percent_of(offer_price, core_price)
    of_cart = percent_of(offer_price, cart_total or core_price)
    low, high = ADDON_SWEET_SPOT
    warning = ""
    if not (low <= of_core <= high):
        warning = (
            f"This add-on is {of_core}% of the core price; add-ons between {low}% and {high}% "
            "convert best and keep refunds low."
        )
    refusal = ""
    if of_cart > ADDON_HARD_LIMIT and not allow_high_price:
        refusal = (
            f"This offer is {of_cart}% of the cart, above the {ADDON_HARD_LIMIT}% limit where "
            "buyers stop trusting the anchor. Tick 'allow high price' to override."
        )
    return PriceCheck(of_core, of_cart, warning, refusal)


def offer_pause(*, offer: Offer, reason: str) -> bool:
    return bool(
        Offer.objects.filter(pk=offer.pk, status=Offer.Status.ACTIVE).update(
            status=Offer.Status.PAUSED, paused_reason=reason[:300]
        )
    )


def offer_resume(*, offer: Offer) -> bool:
    return bool(
        Offer.objects.filter(pk=offer.pk, status=Offer.Status.PAUSED).update(
            status=Offer.Status.ACTIVE, paused_reason=""
        )
    )
