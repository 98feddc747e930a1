"""Which offer to show: at most one bump at checkout, one upsell after it, one downsell."""

from __future__ import annotations

from core.fixedsql import FixedQuery
from offers.models import Offer, OfferKind


def _live(kind: str):
    return Offer.objects.select_related("product").filter(
        kind=kind, status=Offer.Status.ACTIVE, product__status="active"
    )


_BUMP = FixedQuery(Offer, lambda pk: _live(OfferKind.BUMP).filter(trigger_product_id=pk))
_UPSELL = FixedQuery(Offer, lambda pk: _live(OfferKind.UPSELL).filter(trigger_product_id=pk))
_DOWNSELL = FixedQuery(Offer, lambda pk: _live(OfferKind.DOWNSELL).filter(parent_id=pk))


def bump_for_product(*, product_id: int) -> Offer | None:
    return _BUMP.first(int(product_id))


def upsell_for_product(*, product_id: int) -> Offer | None:
    return _UPSELL.first(int(product_id))


def downsell_for_upsell(*, upsell_id: int) -> Offer | None:
    return _DOWNSELL.first(int(upsell_id))
