"""Totals and tax, computed on the server per line, from the buyer's jurisdiction."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from core.money import Money
from offers.coupons import CouponLine, CouponRefused, coupon_discounts
from offers.models import Coupon
from offers.services import offer_price_check
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
    # Taken off the price by a coupon, in the price's terms (tax included when the store's
    # prices include it); `net`, `tax` and `total` are of the discounted price.
    discount_amount: int = 0

    @property
    def price_after_discount(self) -> Money:
        """What the store's price became: the total where prices include tax, else the net."""
        return self.total if self.inclusive else self.net


@dataclass(frozen=True)
class Quote:
    lines: tuple[PricedLine, ...]
    jurisdiction: Jurisdiction
    tax_name: str
    coupon: Coupon | None = None

    @property
    def discount(self) -> Money:
        return Money(sum(line.discount_amount for line in self.lines), self.currency)

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
    discount: int = 0,
) -> PricedLine:
    """One line, taxed on its price less any discount: tax follows what the buyer pays."""
    net, tax, total = split_tax(
        price=price - Money(discount, price.currency), rate_percent=rate, inclusive=inclusive
    )
    return PricedLine(
        kind, product, offer_id, description, net, tax, total, rate, inclusive, discount
    )


def first_payment(*, product: Product, price: Money) -> Money:
    """What a line charges today: the price, or for a subscription or payment plan its first
    payment (setup fee, plus the first period unless there is a free trial)."""
    from subscriptions.services import plan_for, plan_price

    plan = plan_for(product.pk)
    if plan is None:
        return price
    return Money(plan_price(plan, price.amount).first, price.currency)


def quote_checkout(
    *,
    product: Product,
    bump=None,
    jurisdiction: Jurisdiction,
    store: StoreSettings | None = None,
    coupon: Coupon | None = None,
) -> Quote:
    """The checkout's lines (core, and the bump if taken), less the coupon's discount, taxed
    on what is left. Raises offers.coupons.CouponRefused when the coupon cannot apply."""
    store = store or StoreSettings.current()
    rate, name = tax_rate_for(jurisdiction, product)
    inclusive = store.prices_include_tax
    # A subscription or payment plan is priced (and discounted) on its first payment.
    items = [(LineKind.CORE, product, first_payment(product=product, price=product.price), None)]
    if bump is not None:
        price = first_payment(product=bump.product, price=bump.price)
        items.append((LineKind.BUMP, bump.product, price, bump.pk))
    discounts = [0] * len(items)
    if coupon is not None:
        discounts = coupon_discounts(
            coupon=coupon,
            lines=[CouponLine(item.pk, item.name, price) for _, item, price, _ in items],
        )
    lines = [
        price_line(
            kind=kind,
            product=item,
            price=price,
            offer_id=offer_id,
            description=item.name,
            rate=rate,
            inclusive=inclusive,
            discount=discount,
        )
        for (kind, item, price, offer_id), discount in zip(items, discounts, strict=True)
    ]
    return Quote(tuple(lines), jurisdiction, name, coupon if any(discounts) else None)


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


def bump_within_guardrail(*, product: Product, bump, coupon: Coupon | None) -> bool:
    """The bump's pricing guardrail on the discounted cart: at its price after the coupon, it
    is at most half of the core product's price after the coupon (offers.services), unless
    the creator allowed a high price. Without a coupon the offer's own check (made when it was
    saved, against the core price) already holds."""
    if coupon is None or bump is None or bump.allow_high_price:
        return True
    try:
        core_off, bump_off = coupon_discounts(
            coupon=coupon,
            lines=[
                CouponLine(product.pk, product.name, product.price),
                CouponLine(bump.product_id, bump.product.name, bump.price),
            ],
        )
    except CouponRefused:
        return True  # the coupon itself is refused where it is applied
    check = offer_price_check(
        offer_price=bump.price - Money(bump_off, bump.currency),
        core_price=product.price,
        cart_total=product.price - Money(core_off, product.currency),
    )
    return not check.refusal
