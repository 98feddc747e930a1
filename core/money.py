"""Money as integer minor units plus an ISO currency code; percentages in Decimal, rounded once."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

# Currencies whose minor unit is not 1/100 (ISO 4217 exponent). Others default to 2.
_EXPONENTS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "HUF": 2, "KWD": 3, "BHD": 3}
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CAD": "CA$", "AUD": "A$"}


class CurrencyMismatch(ValueError):
    pass


def currency_exponent(currency: str) -> int:
    """Digits after the decimal point in `currency` (ISO 4217): 2 for USD, 0 for JPY, 3 for KWD."""
    return _EXPONENTS.get(currency, 2)


def currency_symbol(currency: str) -> str:
    """The sign written before an amount ("$", "€"), or "" where we show the code instead."""
    return _SYMBOLS.get(currency, "")


@dataclass(frozen=True, slots=True)
class Money:
    amount: int  # minor units (cents): never a float
    currency: str  # ISO 4217, upper case

    def __post_init__(self) -> None:
        if not isinstance(self.amount, int) or isinstance(self.amount, bool):
            raise TypeError("Money.amount must be an int of minor units")
        if len(self.currency) != 3 or not self.currency.isalpha() or not self.currency.isupper():
            raise ValueError(f"bad currency code {self.currency!r}")

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    def _check(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._check(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._check(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._check(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._check(other)
        return self.amount >= other.amount

    def scaled(self, ratio: Decimal, rounding: str = ROUND_HALF_UP) -> Money:
        """This amount times a Decimal ratio, rounded once to the minor unit."""
        value = (Decimal(self.amount) * ratio).quantize(Decimal(1), rounding=rounding)
        return Money(int(value), self.currency)

    @property
    def exponent(self) -> int:
        return currency_exponent(self.currency)

    def format(self) -> str:
        exp = self.exponent
        major = Decimal(self.amount).scaleb(-exp)
        sign = "-" if self.amount < 0 else ""
        text = f"{abs(major):,.{exp}f}"
        symbol = _SYMBOLS.get(self.currency)
        return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {self.currency}"

    def __str__(self) -> str:
        return self.format()


def percent_of(part: Money, whole: Money) -> Decimal:
    """part / whole as a percentage, rounded to one decimal place (half up)."""
    part._check(whole)
    if whole.amount == 0:
        return Decimal(0)
    return (Decimal(part.amount) * 100 / Decimal(whole.amount)).quantize(
        Decimal("0.1"), rounding=ROUND_HALF_UP
    )
