"""Which offer to show: at most one bump at checkout, one upsell after it, one downsell."""

from __future__ import annotations

from offers.models import Offer, OfferKind


def _live(kind: str):
    return Offer.objects.select_related("product").filter(
        kind=kind, status=Offer.Status.ACTIVE, product__status="active"
    )


def bump_for_product(*, product_id: int) -> Offer | None:
    return _live(OfferKind.BUMP).filter(trigger_product_id=product_id).first()


def upsell_for_product(*, product_id: int) -> Offer | None:
    return _live(OfferKind.UPSELL).filter(trigger_product_id=product_id).first()


def downsell_for_upsell(*, upsell_id: int) -> Offer | None:
    return _live(OfferKind.DOWNSELL).filter(parent_id=upsell_id).first()
