"""The one test catalog: a $49 photo course (slug "course") and the offers around it.

Every suite that needs products and offers builds them here, choosing which offers it needs
and, where a test's figures depend on it, their prices. German VAT (19 %) is on by default:
the checkout tests buy from Germany.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from offers.models import Offer, OfferKind
from storefront.models import Product
from tests.factories import OfferFactory, ProductFactory, TaxRateFactory

CORE_PRICE = 4900


@dataclass(frozen=True)
class Catalog:
    core: Product
    bump: Offer | None = None
    upsell: Offer | None = None
    downsell: Offer | None = None
    cross: Offer | None = None


def catalog(
    *,
    core_slug: str | None = "course",
    bump: bool = True,
    bump_price: int = 900,
    upsell: bool = False,
    upsell_price: int = 1200,
    downsell: bool = False,
    cross_sell: bool = False,
    cross_price: int = 900,
    followup_delays: Sequence[int] = (),
    german_vat: bool = True,
) -> Catalog:
    # core_slug=None: a fresh slug, for tests that make several catalogs (no checkout by URL).
    slug = {"slug": core_slug} if core_slug else {}
    core = ProductFactory(name="Photo course", price_amount=CORE_PRICE, **slug)
    made = {}
    if bump:
        made["bump"] = OfferFactory(
            trigger_product=core, price_amount=bump_price, product__name="Preset pack"
        )
    if upsell or downsell:
        made["upsell"] = OfferFactory(
            kind=OfferKind.UPSELL,
            trigger_product=core,
            price_amount=upsell_price,
            product__name="Editing masterclass",
            product__price_amount=2900,
            headline="Add the editing masterclass",
            benefit="Finish every photo in five minutes.",
            refund_terms="Refundable within 30 days, no questions asked.",
        )
    if downsell:
        made["downsell"] = OfferFactory(
            kind=OfferKind.DOWNSELL,
            trigger_product=core,
            parent=made["upsell"],
            price_amount=700,
            product__name="Editing cheat sheet",
            headline="Just the cheat sheet",
        )
    if cross_sell:
        made["cross"] = OfferFactory(
            kind=OfferKind.CROSS_SELL,
            trigger_product=core,
            price_amount=cross_price,
            product__name="Lightroom presets",
            headline="Presets for your course",
            benefit="Your course edits, applied in one click.",
            followup_delays_hours=list(followup_delays),
        )
    if german_vat:
        TaxRateFactory(country="DE", rate="19.000")
    return Catalog(core, **made)
