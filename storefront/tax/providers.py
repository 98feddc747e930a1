"""The TaxProvider protocol and today's default, the creator's rate table."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from django.db.models import Q

REVERSE_CHARGE_NOTE = (
    "Reverse charge: VAT to be accounted for by the recipient (Article 196, Directive 2006/112/EC)."
)


@dataclass(frozen=True)
class TaxPlace:
    """Where the buyer is, as the order's evidence says, and whether a valid EU VAT ID makes
    the sale a reverse-charge B2B supply."""

    country: str
    region: str = ""
    reverse_charge: bool = False


@dataclass(frozen=True)
class TaxAnswer:
    rate: Decimal  # percent, e.g. Decimal("19.000")
    name: str  # "VAT", "Sales tax", …
    note: str = ""  # stated on the invoice (reverse charge)


class TaxProvider(Protocol):
    """Decides the rate for one product sold to one place. Called on the server for every
    quote and line; must not call out per line on the request path without its own cache."""

    def rate_for(self, *, place: TaxPlace, product=None) -> TaxAnswer: ...


class TableTaxProvider:
    """The creator's TaxRate rows: the region's rate if set, else the country's, else zero;
    zero with the reverse-charge statement for a B2B sale with a valid VAT ID."""

    def rate_for(self, *, place: TaxPlace, product=None) -> TaxAnswer:
        if place.reverse_charge:
            return TaxAnswer(Decimal(0), "VAT", REVERSE_CHARGE_NOTE)
        by_region = {
            r.region: (r.rate, r.name)
            for r in country_rates().all(str(place.country), str(place.region))
        }
        if place.region and place.region in by_region:
            return TaxAnswer(*by_region[place.region])
        rate, name = by_region.get("", (Decimal(0), "Tax"))
        return TaxAnswer(rate, name)


def tax_provider() -> TaxProvider:
    """The provider named by TAX_PROVIDER (a dotted path), else the rate table."""
    from django.conf import settings
    from django.utils.module_loading import import_string

    path = getattr(settings, "TAX_PROVIDER", "") or "storefront.tax.providers.TableTaxProvider"
    return import_string(path)()


_COUNTRY_RATES = None


def country_rates():
    """The country's rows and the region's (a FixedQuery: compiled once per process), made on
    first use: the model is imported late here, as rate_for always did."""
    global _COUNTRY_RATES
    if _COUNTRY_RATES is None:
        from core.fixedsql import FixedQuery
        from storefront.models import TaxRate

        _COUNTRY_RATES = FixedQuery(
            TaxRate,
            lambda country, region: TaxRate.objects.filter(
                Q(region="") | Q(region=region), country=country
            ),
        )
    return _COUNTRY_RATES
