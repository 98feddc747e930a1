"""Location evidence for a sale (EU VAT on digital services asks for two non-conflicting
pieces): the country the buyer declares, the card's issuing country (from the payment method)
and, when a GeoIP database is configured (GEOIP_DATABASE, none shipped), the country of the
buyer's IP address.

The evidence is written on the order (`Order.tax_evidence`) when it is known. When two pieces
conflict and the store collects EU VAT (`StoreSettings.eu_vat_evidence`), the buyer confirms
their country before the charge; the confirmation is recorded as evidence too.
"""

from __future__ import annotations

from typing import Protocol

from storefront.tax.vat import EU_COUNTRIES


class GeoIp(Protocol):
    def country(self, ip: str) -> str: ...


class MaxMindGeoIp:
    """A MaxMind-format country database (geoip2, installed separately with the database)."""

    def __init__(self, path: str) -> None:
        import geoip2.database  # optional dependency: only with a configured database

        self.reader = geoip2.database.Reader(path)

    def country(self, ip: str) -> str:
        try:
            return (self.reader.country(ip).country.iso_code or "").upper()
        except Exception:  # unknown address, private range, bad input: no evidence
            return ""


def geoip() -> GeoIp | None:
    from django.conf import settings
    from django.utils.module_loading import import_string

    path = getattr(settings, "GEOIP_DATABASE", "")
    if not path:
        return None
    return import_string(
        getattr(settings, "GEOIP_CLASS", "") or "storefront.tax.evidence.MaxMindGeoIp"
    )(path)


def ip_country(ip: str | None) -> str:
    lookup = geoip()
    return lookup.country(ip) if lookup is not None and ip else ""


def evidence_conflict(evidence: dict) -> str:
    """The first piece of evidence that names another country than the declared one (and
    matters for EU VAT: one of the two is in the EU), or ""."""
    declared = evidence.get("declared_country", "")
    for key in ("card_country", "ip_country"):
        other = evidence.get(key, "")
        if other and other != declared and (other in EU_COUNTRIES or declared in EU_COUNTRIES):
            return key
    return ""
