"""Totals and tax, computed on the server per line, from the buyer's jurisdiction."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from core.money import Money
from storefront.models import LineKind, Product, StoreSettings
from storefront.tax.providers import TaxPlace, tax_provider


@dataclass(frozen=True)
class Jurisdiction:
    country: str  # ISO 3166-1 alpha-2, upper case
    region: str = ""
    reverse_charge: bool = False  # a B2B sale with a valid EU VAT ID (storefront.tax)

    def evidence(self, *, source: str) -> dict[str, str]:
        return {"country": self.country, "region": self.region, "source": source}

    @classmethod
    def for_order(cls, order) -> Jurisdiction:
        """Every later line of an order (offers, cross-sells, renewals) is taxed from the
        order's own evidence and B2B decision, never asked again."""
        return cls(order.country, order.region, order.reverse_charge)


@dataclass(frozen=True)
class PricedLine:
    kind: str
    product: Product
    offer_id: int | None
    description: str
    net: Money
    tax: Money
    total: Money
    rate: Decimal
    inclusive: bool


@dataclass(frozen=True)
class Quote:
    lines: tuple[PricedLine, ...]
    jurisdiction: Jurisdiction
    tax_name: str

    @property
    def currency(self) -> str:
        return self.lines[0].total.currency

    @property
    def net(self) -> Money:
        return sum((line.net for line in self.lines), Money.zero(self.currency))

    @property
    def tax(self) -> Money:
        return sum((line.tax for line in self.lines), Money.zero(self.currency))

    @property
    def total(self) -> Money:
        return sum((line.total for line in self.lines), Money.zero(self.currency))


def split_tax(
    *, price: Money, rate_percent: Decimal, inclusive: bool
) -> tuple[Money, Money, Money]:
    """(net, tax, total) for one line; tax rounded once, half up, to the minor unit."""
    rate = rate_percent / Decimal(100)
    if inclusive:
        total = price
        net = price.scaled(Decimal(1) / (Decimal(1) + rate)) if rate else price
        return net, total - net, total
    tax = price.scaled(rate, ROUND_HALF_UP)
    return price, tax, price + tax


def tax_rate_for(jurisdiction: Jurisdiction, product: Product | None = None) -> tuple[Decimal, str]:
    """The rate and its name from the store's tax provider (storefront.tax; by default the
    creator's rate table: the region's rate, else the country's, else zero)."""
    answer = tax_provider().rate_for(
        place=TaxPlace(jurisdiction.country, jurisdiction.region, jurisdiction.reverse_charge),
        product=product,
    )
    return answer.rate, answer.name


def price_line(
    *,
    kind: str,
    product: Product,
    price: Money,
    offer_id: int | None,
    description: str,
    rate: Decimal,
    inclusive: bool,
) -> PricedLine:
    net, tax, total = split_tax(price=price, rate_percent=rate, inclusive=inclusive)
    return PricedLine(kind, product, offer_id, description, net, tax, total, rate, inclusive)


def first_payment(*, product: Product, price: Money) -> Money:
    """What a line charges today: the price, or for a subscription or payment plan its first
    payment (setup fee, plus the first period unless there is a free trial)."""
    from subscriptions.services import plan_for, plan_price

    plan = plan_for(product.pk)
    if plan is None:
        return price
    return Money(plan_price(plan, price.amount).first, price.currency)


def quote_checkout(
    *, product: Product, bump=None, jurisdiction: Jurisdiction, store: StoreSettings | None = None
) -> Quote:
    store = store or StoreSettings.current()
    rate, name = tax_rate_for(jurisdiction, product)
    inclusive = store.prices_include_tax
    lines = [
        price_line(
            kind=LineKind.CORE,
            product=product,
            price=first_payment(product=product, price=product.price),
            offer_id=None,
            description=product.name,
            rate=rate,
            inclusive=inclusive,
        )
    ]
    if bump is not None:
        lines.append(
            price_line(
                kind=LineKind.BUMP,
                product=bump.product,
                price=first_payment(product=bump.product, price=bump.price),
                offer_id=bump.pk,
                description=bump.product.name,
                rate=rate,
                inclusive=inclusive,
            )
        )
    return Quote(tuple(lines), jurisdiction, name)


def offer_line_price(
    *, kind: str, offer, jurisdiction: Jurisdiction, store: StoreSettings | None = None
) -> tuple[PricedLine, str]:
    """A one-click offer's line (upsell, downsell, cross-sell) at the offer's price, taxed for
    the buyer's jurisdiction as the store sets prices; with the tax's name."""
    store = store or StoreSettings.current()
    rate, name = tax_rate_for(jurisdiction, offer.product)
    line = price_line(
        kind=kind,
        product=offer.product,
        price=first_payment(product=offer.product, price=offer.price),
        offer_id=offer.pk,
        description=offer.product.name,
        rate=rate,
        inclusive=store.prices_include_tax,
    )
    return line, name
