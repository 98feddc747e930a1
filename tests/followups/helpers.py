"""Paid orders built directly (no gateway) for the follow-up tests."""

from __future__ import annotations

import datetime as dt
import secrets

from offers.models import OfferKind
from storefront.models import Customer, LineKind, Order, OrderLine, OrderStatus
from storefront.services import followups
from tests.factories import OfferFactory, ProductFactory

T0 = dt.datetime(2025, 3, 3, 9, 0, tzinfo=dt.UTC)


def catalog(*, delays=None, cross_sell: bool = True):
    core = ProductFactory(name="Photo course", price_amount=4900)
    upsell = OfferFactory(
        kind=OfferKind.UPSELL,
        trigger_product=core,
        price_amount=1200,
        product__name="Editing masterclass",
        headline="Add the masterclass",
        benefit="Finish every photo in five minutes.",
    )
    cross = None
    if cross_sell:
        cross = OfferFactory(
            kind=OfferKind.CROSS_SELL,
            trigger_product=core,
            price_amount=900,
            product__name="Lightroom presets",
            headline="Presets for your course",
            benefit="Your course edits, applied in one click.",
            followup_delays_hours=delays or [],
        )
    return core, upsell, cross


def line(order, product, kind=LineKind.CORE, amount=4900):
    return OrderLine.objects.create(
        order=order,
        kind=kind,
        product=product,
        description=product.name,
        net_amount=amount,
        tax_amount=0,
        total_amount=amount,
        currency="USD",
        tax_rate=0,
        tax_inclusive=False,
        tax_country="DE",
    )


def paid_order(email: str, core, *, paid_at=T0, schedule: bool = True) -> Order:
    customer, _ = Customer.objects.get_or_create(email=email)
    order = Order.objects.create(
        token=secrets.token_hex(8),
        customer=customer,
        status=OrderStatus.PAID,
        currency="USD",
        country="DE",
        paid_at=paid_at,
    )
    line(order, core)
    if schedule:
        followups.followups_schedule(order=order, paid_at=paid_at)
    return order
