"""Strict string fields for every serializer of the API.

DRF's CharField turns a JSON number into text (`{"name": 5}` becomes "5"), and so do every
field built on it (RegexField, SlugField, EmailField, URLField …). The schema says "string",
so a number, a boolean, a list or an object is refused with the field's "invalid" error.
Installed once, at start-up (api.apps), for every CharField there is and will be: a rule
for the class, not a copy per field.
"""

from __future__ import annotations

from rest_framework import serializers

# The API's money is integer minor units (the admin's forms take major units instead).
MINOR_UNITS = "Integer minor units of the currency: 1250 is 12.50 USD, or ¥1,250 in JPY."
MINOR_UNITS_OUT = {"help_text": MINOR_UNITS}

_original = serializers.CharField.to_internal_value


def _strict_to_internal_value(self, data):
    if not isinstance(data, str):
        self.fail("invalid")
    return _original(self, data)


def strict_strings_install() -> None:
    if serializers.CharField.to_internal_value is not _strict_to_internal_value:
        serializers.CharField.to_internal_value = _strict_to_internal_value
