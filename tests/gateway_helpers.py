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
