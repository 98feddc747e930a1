"""Reading values out of the Stripe SDK's objects and webhook events, for
payments/stripe_gateway.py (kept apart so that module stays under 600 lines). Nothing here
imports `stripe`."""

from __future__ import annotations

from typing import Any

from core.money import Money
from payments.gateway import ConnectedAccount, ReversalResult, SetupResult, TransferResult

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


def setup_result(intent: Any) -> SetupResult:
    """A SetupIntent, its payment method and customer as ids or expanded objects; the card's
    country when the payment method came expanded."""
    pm, customer, country = _get(intent, "payment_method"), _get(intent, "customer"), None
    if pm is not None and not isinstance(pm, str):
        card = _get(pm, "card")
        country = (_get(card, "country", "") or "").upper()[:2] if card is not None else ""
        pm = _get(pm, "id")
    if customer is not None and not isinstance(customer, str):
        customer = _get(customer, "id")
    return SetupResult(
        setup_ref=intent.id,
        client_secret=_get(intent, "client_secret", ""),
        status=_get(intent, "status", ""),
        payment_method_ref=pm,
        customer_ref=customer,
        card_country=country,
    )


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


def connected_account(account: Any) -> ConnectedAccount:
    requirements = _get(account, "requirements", {})
    due = _get(requirements, "currently_due", []) or []
    return ConnectedAccount(
        account_ref=str(account["id"]),
        charges_enabled=bool(_get(account, "charges_enabled", False)),
        payouts_enabled=bool(_get(account, "payouts_enabled", False)),
        details_submitted=bool(_get(account, "details_submitted", False)),
        requirements_due=tuple(str(item) for item in due),
        disabled_reason=str(_get(requirements, "disabled_reason", "") or ""),
    )


def reversal_result(reversal: Any, transfer_ref: str) -> ReversalResult:
    return ReversalResult(
        reversal_ref=str(reversal["id"]),
        transfer_ref=str(_get(reversal, "transfer", "") or transfer_ref),
        amount=Money(int(reversal["amount"]), str(reversal["currency"]).upper()),
        metadata={str(k): str(v) for k, v in _plain(_get(reversal, "metadata", {})).items()},
    )


def transfer_result(transfer: Any) -> TransferResult:
    return TransferResult(
        transfer_ref=str(transfer["id"]),
        amount=Money(int(transfer["amount"]), str(transfer["currency"]).upper()),
        destination=str(_get(transfer, "destination", "")),
        transfer_group=str(_get(transfer, "transfer_group", "") or ""),
        amount_reversed=int(_get(transfer, "amount_reversed", 0) or 0),
        metadata={str(k): str(v) for k, v in _plain(_get(transfer, "metadata", {})).items()},
    )


def dispute_funds(transactions: Any) -> dict[str, bool | None]:
    """A dispute's balance transactions: a negative one took the funds, a positive one gave
    them back. Absent (an expanded list we did not get): None, the status decides."""
    if transactions is None:
        return {"funds_withdrawn": None, "funds_reinstated": None}
    amounts = [int(_get(t, "amount", 0)) for t in transactions]
    return {
        "funds_withdrawn": any(a < 0 for a in amounts),
        "funds_reinstated": any(a > 0 for a in amounts),
    }
