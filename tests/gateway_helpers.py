"""What the buyer's browser would do with Stripe.js, done through the API for fast tests."""

import os

import stripe

CARD_OK = "4242424242424242"
CARD_DECLINE_AT_CHARGE = "4000000000000341"
CARD_DECLINE_AT_SETUP = "4000000000000002"
CARD_3DS = "4000002760003184"


def _client() -> stripe.StripeClient:
    return stripe.StripeClient(
        "sk_test_local", base_addresses={"api": os.environ["STRIPE_API_BASE"]}
    )


def confirm_card_setup(setup_ref: str, number: str = CARD_OK) -> str:
    """confirmCardSetup(secret, {payment_method: {card}}): returns the SetupIntent status."""
    try:
        intent = _client().v1.setup_intents.confirm(
            setup_ref,
            params={
                "payment_method_data": {
                    "type": "card",
                    "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
                }
            },
        )
        return intent.status
    except stripe.StripeError:
        return "canceled"


def payment_intents() -> list:
    return list(_client().v1.payment_intents.list(params={"limit": 100}).data)


def authenticate(payment_ref: str, client_secret: str, success: bool = True) -> None:
    """The buyer completing (or failing) 3-D Secure on-session."""
    import urllib.parse
    import urllib.request

    data = urllib.parse.urlencode(
        {"client_secret": client_secret, "success": "true" if success else "false"}
    ).encode()
    req = urllib.request.Request(
        f"{os.environ['STRIPE_API_BASE']}/v1/payment_intents/{payment_ref}/_authenticate",
        data=data,
        headers={"Authorization": "Bearer sk_test_local"},
        method="POST",
    )
    urllib.request.urlopen(req, timeout=5).close()


def _post(path: str, fields: dict) -> dict:
    import json
    import urllib.parse
    import urllib.request

    req = urllib.request.Request(
        f"{os.environ['STRIPE_API_BASE']}{path}",
        data=urllib.parse.urlencode(fields).encode(),
        headers={"Authorization": "Bearer sk_test_local"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=5) as response:
        return json.loads(response.read())


def dispute_open(payment_ref: str, *, amount: int | None = None, evidence_days: int = 7) -> str:
    """The buyer's bank disputes the payment (devtools/localstripe_disputes.py): its id."""
    fields = {"payment_intent": payment_ref, "evidence_days": evidence_days}
    if amount is not None:
        fields["amount"] = amount
    return _post("/_config/disputes", fields)["id"]


def dispute_submit(dispute_ref: str) -> None:
    """The creator submits evidence (the real SDK call): under review."""
    _client().v1.disputes.update(dispute_ref, params={"submit": True})


def dispute_decide(dispute_ref: str, status: str) -> None:
    """The bank decides: won (the funds come back) or lost."""
    _post(f"/_config/disputes/{dispute_ref}/decide", {"status": status})
