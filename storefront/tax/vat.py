"""EU VAT identification numbers: normalise, check format and check digit, ask VIES.

`vat_id_parse` refuses what cannot be a VAT ID (wrong country prefix, wrong length or shape,
a failing check digit where the country has one) with a reason for the buyer. `ViesClient` is
the protocol the checkout asks whether a well-formed number is registered; `HttpViesClient`
asks the Commission's VIES REST service through core.outbound; tests pass a local fake
(VIES_CLIENT names the class). VIES being down is `ViesUnavailable`: the sale proceeds as a
consumer sale, and the order records why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

# Country prefix → the national part's shape (after the two letters). Greece uses EL.
_FORMATS: dict[str, str] = {
    "AT": r"U\d{8}",
    "BE": r"[01]\d{9}",
    "BG": r"\d{9,10}",
    "CY": r"\d{8}[A-Z]",
    "CZ": r"\d{8,10}",
    "DE": r"\d{9}",
    "DK": r"\d{8}",
    "EE": r"\d{9}",
    "EL": r"\d{9}",
    "ES": r"[A-Z0-9]\d{7}[A-Z0-9]",
    "FI": r"\d{8}",
    "FR": r"[A-HJ-NP-Z0-9]{2}\d{9}",
    "HR": r"\d{11}",
    "HU": r"\d{8}",
    "IE": r"\d{7}[A-W][A-I]?|\d[A-Z+*]\d{5}[A-W]",
    "IT": r"\d{11}",
    "LT": r"\d{9}|\d{12}",
    "LU": r"\d{8}",
    "LV": r"\d{11}",
    "MT": r"\d{8}",
    "NL": r"\d{9}B\d{2}",
    "PL": r"\d{10}",
    "PT": r"\d{9}",
    "RO": r"\d{2,10}",
    "SE": r"\d{10}01",
    "SI": r"\d{8}",
    "SK": r"\d{10}",
}
EU_COUNTRIES = frozenset(_FORMATS) - {"EL"} | {"GR"}


def vat_prefix(country: str) -> str:
    return "EL" if country == "GR" else country


class VatIdInvalid(ValueError):
    """Not a VAT ID of this country; the message is for the buyer."""


def _de(digits: str) -> bool:  # ISO 7064 MOD 11,10
    product = 10
    for ch in digits[:8]:
        total = (int(ch) + product) % 10 or 10
        product = (2 * total) % 11
    check = (11 - product) % 10
    return check == int(digits[8])


def _at(digits: str) -> bool:  # "U" + 8 digits
    d = [int(c) for c in digits[1:]]
    total = 0
    for i, value in enumerate(d[:7]):
        if i % 2:
            value *= 2
            value = value // 10 + value % 10
        total += value
    return (10 - (total + 4) % 10) % 10 == d[7]


def _be(digits: str) -> bool:
    return 97 - int(digits[:8]) % 97 == int(digits[8:])


def _nl(digits: str) -> bool:
    number = digits[:9]
    weighted = sum(int(c) * w for c, w in zip(number[:8], range(9, 1, -1), strict=True))
    if (weighted - int(number[8])) % 11 == 0:  # the old (BSN-style) elfproef
        return True
    # Since 2020, sole traders' numbers pass ISO 7064 MOD 97-10 over "NL" + the number.
    text = "".join(str(ord(c) - 55) if c.isalpha() else c for c in "NL" + digits)
    return int(text) % 97 == 1


def _it(digits: str) -> bool:  # Luhn
    total = 0
    for i, ch in enumerate(digits[:10]):
        value = int(ch)
        if i % 2:
            value *= 2
            value = value // 10 + value % 10
        total += value
    return (10 - total % 10) % 10 == int(digits[10])


def _fr(digits: str) -> bool:
    key, siren = digits[:2], digits[2:]
    if not key.isdigit():
        return True  # the newer alphanumeric keys have no public check
    return int(key) == (12 + 3 * (int(siren) % 97)) % 97


def _pl(digits: str) -> bool:
    weights = (6, 5, 7, 2, 3, 4, 5, 6, 7)
    check = sum(int(c) * w for c, w in zip(digits[:9], weights, strict=True)) % 11
    return check != 10 and check == int(digits[9])


def _dk(digits: str) -> bool:
    weights = (2, 7, 6, 5, 4, 3, 2, 1)
    return sum(int(c) * w for c, w in zip(digits, weights, strict=True)) % 11 == 0


def _fi(digits: str) -> bool:
    weights = (7, 9, 10, 5, 8, 4, 2)
    remainder = sum(int(c) * w for c, w in zip(digits[:7], weights, strict=True)) % 11
    return remainder != 1 and (11 - remainder) % 11 == int(digits[7])


_CHECKS = {
    "DE": _de,
    "AT": _at,
    "BE": _be,
    "NL": _nl,
    "IT": _it,
    "FR": _fr,
    "PL": _pl,
    "DK": _dk,
    "FI": _fi,
}


@dataclass(frozen=True)
class VatId:
    prefix: str  # "DE", "EL" for Greece
    number: str  # the national part

    def __str__(self) -> str:
        return self.prefix + self.number


def vat_id_parse(value: str, *, country: str) -> VatId:
    """`value` as a VAT ID of `country` (the buyer's declared country), or VatIdInvalid."""
    text = re.sub(r"[\s.\-/]", "", value or "").upper()
    if not text:
        raise VatIdInvalid("Enter your VAT number, or leave the field empty.")
    if len(text) > 20 or not text.isascii() or not text.isalnum():
        raise VatIdInvalid("A VAT number has only letters and digits, for example DE123456789.")
    prefix = vat_prefix(country)
    if prefix not in _FORMATS:
        raise VatIdInvalid("VAT numbers are only used for businesses in the EU.")
    if not text.startswith(prefix):
        if text[:2].isalpha():
            raise VatIdInvalid(f"A VAT number from {country} starts with {prefix}.")
        text = prefix + text
    number = text[2:]
    if not re.fullmatch(_FORMATS[prefix], number):
        raise VatIdInvalid(f"{text} is not in the format of a VAT number from {country}.")
    check = _CHECKS.get(prefix)
    if check is not None and not check(number):
        raise VatIdInvalid(f"{text} is not a valid VAT number (its check digit does not match).")
    return VatId(prefix, number)


# --- VIES ----------------------------------------------------------------------------------


class ViesUnavailable(Exception):
    """VIES (or the member state's register behind it) did not answer."""


@dataclass(frozen=True)
class ViesAnswer:
    valid: bool
    name: str = ""
    consultation: str = ""  # VIES's request identifier: the proof of the check


class ViesClient(Protocol):
    def check(self, vat_id: VatId) -> ViesAnswer: ...


class HttpViesClient:
    """The Commission's VIES REST service (POST check-vat-number), through core.outbound."""

    URL = "https://ec.europa.eu/taxation_customs/vies/rest-api/check-vat-number"

    def __init__(self, *, timeout: float = 8.0) -> None:
        self.timeout = timeout

    def check(self, vat_id: VatId) -> ViesAnswer:
        import json

        from core.outbound import outbound_post

        answer = outbound_post(
            self.URL,
            body=json.dumps({"countryCode": vat_id.prefix, "vatNumber": vat_id.number}).encode(),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            timeout=self.timeout,
            keep_body=True,
        )
        try:
            data = json.loads(answer.body) if answer.ok else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict) or "valid" not in data:
            raise ViesUnavailable(answer.error or "VIES gave no answer")
        return ViesAnswer(
            valid=bool(data["valid"]),
            name=str(data.get("name") or "")[:200],
            consultation=str(data.get("requestIdentifier") or "")[:64],
        )


def vies_client() -> ViesClient:
    from django.conf import settings
    from django.utils.module_loading import import_string

    return import_string(
        getattr(settings, "VIES_CLIENT", "") or "storefront.tax.vat.HttpViesClient"
    )()
