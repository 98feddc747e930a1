"""Paid orders built directly (no gateway) for the follow-up tests."""

from __future__ import annotations

import datetime as dt
import secrets

from storefront.models import Customer, LineKind, Order, OrderLine, OrderStatus
from storefront.services import followups
from tests.catalog import catalog as shared_catalog

T0 = dt.datetime(2025, 3, 3, 9, 0, tzinfo=dt.UTC)


def catalog(*, delays=None, cross_sell: bool = True):
    """(core, upsell, cross-sell or None) from the one test catalog (tests/catalog.py), without
    VAT: these orders are built directly and carry none."""
    c = shared_catalog(
        core_slug=None,
        bump=False,
        upsell=True,
        cross_sell=cross_sell,
        followup_delays=delays or (),
        german_vat=False,
    )
    return c.core, c.upsell, c.cross


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
