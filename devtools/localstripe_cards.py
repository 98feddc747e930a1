"""Saved cards as Stripe keeps them, where localstripe does not (installed by
devtools/localstripe_server.py):

- A SetupIntent made for a customer attaches its card to that customer when it succeeds
  (Stripe's SetupIntent `customer`: "the SetupIntent's payment method will be attached to the
  Customer on successful setup"). localstripe left it unattached, so servers had to attach it
  themselves, one call more than Stripe needs.
- An attach refuses a card attached to another customer (localstripe moved it).
- A PaymentIntent refuses a card attached to another customer than its own, and a second use
  of a card that was never attached to anyone (Stripe: a payment method used without being
  attached to a customer may not be used again). localstripe charged either, so a server that
  charged a card off-session without it being saved to the buyer would pass here and fail at
  Stripe; now it fails here too.

Stripe's test tokens (`pm_card_visa`…) are a new card each time they are named and are left
alone. docs/localstripe-connect.md lists this with the other additions.
"""

from __future__ import annotations

from aiohttp import web
from localstripe.errors import UserError
from localstripe.resources import PaymentIntent, PaymentMethod, SetupIntent

_TEST_TOKENS = ("pm_card_",)


@web.middleware
async def _saved_cards(request: web.Request, handler):
    """After a SetupIntent's confirm (the first, or again once 3-D Secure is done): attach its
    card to its customer if it succeeded; before an attach, refuse a card attached elsewhere.
    A middleware, because localstripe's routes hold the methods themselves, bound when it was
    imported."""
    parts = request.path.strip("/").split("/")
    if (
        request.method == "POST"
        and parts[:2] == ["v1", "payment_methods"]
        and parts[3:] == ["attach"]
    ):
        await _refuse_attach_elsewhere(parts[2], (await request.post()).get("customer"))
    response = await handler(request)
    if (
        request.method == "POST"
        and parts[:2] == ["v1", "setup_intents"]
        and parts[3:] == ["confirm"]
    ):
        try:
            intent = SetupIntent._api_retrieve(parts[2])
        except UserError:
            return response
        if intent.status == "succeeded" and intent.customer and intent.payment_method:
            PaymentMethod._api_retrieve(intent.payment_method).customer = intent.customer
    return response


async def _refuse_attach_elsewhere(method_id: str, customer) -> None:
    """Stripe refuses to attach a card that is attached to another customer (localstripe
    moved it)."""
    try:
        card = PaymentMethod._api_retrieve(method_id)
    except UserError:
        return  # the handler answers its 404
    owner = getattr(card, "customer", None)
    if owner and customer and owner != customer:
        raise UserError(
            400, "The payment method you provided has already been attached to a customer."
        )


def _payment_create(original):
    def create(cls, customer=None, payment_method=None, **data):
        card = None
        if isinstance(payment_method, str) and payment_method.startswith("pm_"):
            if not payment_method.startswith(_TEST_TOKENS):
                try:
                    card = PaymentMethod._api_retrieve(payment_method)
                except UserError:
                    card = None  # the original answers its 404
        owner = getattr(card, "customer", None) if card is not None else None
        if card is not None and owner and owner != customer:
            raise UserError(
                400, f"The payment method {payment_method} belongs to another customer."
            )
        if card is not None and not owner and getattr(card, "_used_unattached", False):
            raise UserError(
                400,
                f"The payment method {payment_method} was previously used without being "
                "attached to a customer and may not be used again.",
            )
        intent = original(cls, customer=customer, payment_method=payment_method, **data)
        if card is not None and not owner:
            card._used_unattached = True
        return intent

    return classmethod(create)


def install(app: web.Application) -> None:
    app.middlewares.append(_saved_cards)
    PaymentIntent._api_create = _payment_create(PaymentIntent._api_create.__func__)
