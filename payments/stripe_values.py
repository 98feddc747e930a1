"""Reading values out of the Stripe SDK's objects and webhook events, for
payments/stripe_gateway.py (kept apart so that module stays under 600 lines). Nothing here
imports `stripe`."""

from __future__ import annotations

from typing import Any

# Codes that mean "the card said no" even when localstripe sends them as invalid_request_error.
DECLINE_CODES = {
    "card_declined",
    "expired_card",
    "incorrect_cvc",
    "processing_error",
    "incorrect_number",
    "insufficient_funds",
    "lost_card",
    "stolen_card",
}


def _get(obj: Any, key: str, default: Any = None) -> Any:
    # stripe 16 objects are not dicts: index them, guarding absent keys.
    try:
        value = obj[key]
    except (KeyError, TypeError, AttributeError):
        return default
    return default if value is None else value


def _event_text(value: Any, what: str, *, required: bool = False) -> str:
    """An id or name from a webhook event: a string of at most 100 printable characters, never
    a number, object or null turned into text ("None" once became an event id)."""
    if value is None or value == "":
        if required:
            raise ValueError(f"{what} is missing")
        return ""
    if not isinstance(value, str):
        raise TypeError(f"{what} is not a string")
    if len(value) > 100 or not value.isprintable():
        raise ValueError(f"{what} is too long or has control characters")
    return value


def _plain(obj: Any) -> dict[str, Any]:
    # A StripeObject refuses dict(obj) in stripe 16; to_dict() is the supported way out.
    if obj is None:
        return {}
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return dict(obj)
