"""Money typed in forms: the amount in its currency's major units ("12.50" USD, "1200" JPY,
"1.250" KWD) with the currency beside the input, stored as integer minor units unchanged.

`MoneyField` parses and checks the text (a readable error, never a 500); `MoneyAdminMixin`
makes a ModelAdmin's integer money columns MoneyFields in the currency each row is priced in,
read from the form as submitted (so changing the currency and the price together is judged
in the new currency), else from the record, else the store's default."""

from __future__ import annotations

import re
from collections.abc import Mapping

from django import forms
from django.core.exceptions import ObjectDoesNotExist, ValidationError

from core.money import Money, currency_exponent, currency_symbol

# PostgreSQL's integer: the largest amount an integer money column holds.
MAX_MINOR = 2_147_483_647
_AMOUNT = re.compile(r"([0-9]*)(?:\.([0-9]*))?")
_CODE = re.compile(r"[A-Z]{3}")


def major_text(minor: int, currency: str) -> str:
    """Minor units as the plain major-unit text an input shows: 1250 USD → "12.50"."""
    exponent = currency_exponent(currency)
    whole, part = divmod(minor, 10**exponent)
    return f"{whole}.{part:0{exponent}d}" if exponent else str(whole)


def _example(currency: str) -> str:
    exponent = currency_exponent(currency)
    return f"12.{'5'.ljust(exponent, '0')}" if exponent else "1200"


class MoneyInput(forms.TextInput):
    """A text input with the currency's sign before it and its code after it."""

    template_name = "core/widgets/money_input.html"
    input_type = "text"

    def __init__(self, attrs=None, currency: str = "USD"):
        super().__init__({"inputmode": "decimal", "autocomplete": "off", **(attrs or {})})
        self.currency = currency

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        context["widget"]["currency"] = self.currency
        context["widget"]["symbol"] = currency_symbol(self.currency)
        return context


class MoneyField(forms.Field):
    """An amount typed in major units; `clean` gives integer minor units of `currency`."""

    widget = MoneyInput

    def __init__(
        self,
        *,
        currency: str = "USD",
        min_minor: int = 0,
        max_minor: int = MAX_MINOR,
        min_value=None,  # what an integer model field offers its form field: not ours
        max_value=None,
        step_size=None,
        **kwargs,
    ):
        self.min_minor, self.max_minor = min_minor, max_minor
        super().__init__(**kwargs)
        self.currency = currency

    @property
    def currency(self) -> str:
        return self._currency

    @currency.setter
    def currency(self, code: str) -> None:
        self._currency = code
        self.widget.currency = code

    def prepare_value(self, value):
        if isinstance(value, int) and not isinstance(value, bool):
            return major_text(value, self.currency)
        return value

    def to_python(self, value) -> int | None:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if value in self.empty_values:
            return None
        text = str(value).strip()
        code, example = self.currency, _example(self.currency)
        if not text:
            return None
        if not text.isprintable() or len(text) > 40:
            raise ValidationError(
                "Enter the amount with digits and a point only, e.g. %(example)s.",
                code="invalid",
                params={"example": example},
            )
        if text.startswith("-"):
            raise ValidationError("The amount cannot be negative.", code="min_value")
        if "," in text:
            raise ValidationError(
                "Write the amount without thousands separators and with a point for the "
                "decimals, e.g. %(example)s.",
                code="invalid",
                params={"example": example},
            )
        match = _AMOUNT.fullmatch(text)
        if match is None or not (match.group(1) or match.group(2)):
            raise ValidationError(
                "Enter an amount in %(code)s, e.g. %(example)s.",
                code="invalid",
                params={"code": code, "example": example},
            )
        whole, part = match.group(1) or "0", match.group(2) or ""
        exponent = currency_exponent(code)
        if len(part.rstrip("0")) > exponent:
            message = (
                "%(code)s amounts have no decimals: enter a whole number, e.g. %(example)s."
                if exponent == 0
                else "%(code)s amounts have at most %(digits)s decimal places, e.g. %(example)s."
            )
            raise ValidationError(
                message,
                code="max_decimal_places",
                params={"code": code, "digits": exponent, "example": example},
            )
        if len(whole.lstrip("0")) > 18:
            minor = self.max_minor + 1  # far too large; not worth an exact integer
        else:
            minor = int(whole) * 10**exponent + int((part[:exponent] or "0").ljust(exponent, "0"))
        if minor > self.max_minor:
            raise ValidationError(
                "Enter at most %(most)s.",
                code="max_value",
                params={"most": Money(self.max_minor, code).format()},
            )
        if minor < self.min_minor:
            raise ValidationError(
                "Enter at least %(least)s.",
                code="min_value",
                params={"least": Money(self.min_minor, code).format()},
            )
        return minor


class MoneyFormMixin:
    """For a (model) form: sets each MoneyField's currency from `money_currencies`
    (field name → where its currency is: "currency", or a path such as "product.currency"
    through a form field or the instance), falling back to `money_default_currency()`."""

    money_currencies: Mapping[str, str] = {}

    def money_default_currency(self) -> str:
        return "USD"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            if isinstance(field, MoneyField):
                source = self.money_currencies.get(name, "")
                field.currency = self._currency_at(source) or self.money_default_currency()

    def _currency_at(self, source: str) -> str | None:
        if not source:
            return None
        first, *rest = source.split(".")
        value = None
        if first in self.fields:
            field = self.fields[first]
            raw = (
                field.widget.value_from_datadict(self.data, self.files, self.add_prefix(first))
                if self.is_bound
                else self.get_initial_for_field(field, first)
            )
            try:
                value = field.to_python(raw)
            except ValidationError:
                value = None
        if value in (None, "") and getattr(self, "instance", None) is not None:
            try:
                value = getattr(self.instance, first, None)
            except ObjectDoesNotExist:
                value = None
        for attr in rest:
            value = getattr(value, attr, None)
        code = str(value or "").strip().upper()
        return code if _CODE.fullmatch(code) else None


class MoneyAdminMixin:
    """For a ModelAdmin: `money_fields` maps each integer money column to where its currency
    is (as MoneyFormMixin's `money_currencies`); those columns are typed in major units."""

    money_fields: Mapping[str, str] = {}

    def money_default_currency(self) -> str:
        return "USD"

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name in self.money_fields:
            return db_field.formfield(form_class=MoneyField, **kwargs)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        default = self.money_default_currency
        return type(
            form.__name__,
            (MoneyFormMixin, form),
            {
                "__module__": form.__module__,
                "money_currencies": dict(self.money_fields),
                "money_default_currency": lambda _form: default(),
            },
        )
