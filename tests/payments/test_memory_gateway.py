"""The demo's in-process gateway (payments.memory_gateway) answers every call the product
makes of a gateway: the demo history runs the real services on it, so a protocol method it
lacks fails a loop there (as `card_expiry` once did for the expiry reminders)."""

from __future__ import annotations

import inspect

from payments.gateway import PaymentGateway
from payments.memory_gateway import CARD_OK, MemoryGateway
from payments.stripe_gateway import StripeGateway

# Optional in the protocol (payments.services works without them, docs in payments/gateway.py).
OPTIONAL = {"customer_redact", "payment_method_country"}


def _protocol_methods() -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(PaymentGateway, inspect.isfunction)
        if not name.startswith("_")
    }


def test_the_memory_gateway_has_every_required_protocol_method():
    required = _protocol_methods() - OPTIONAL
    assert "card_expiry" in required and len(required) > 20
    assert required <= set(dir(StripeGateway))  # the list is the real gateway's
    missing = {name for name in required if not callable(getattr(MemoryGateway, name, None))}
    assert not missing


def test_a_saved_cards_expiry_is_answered():
    gateway = MemoryGateway(prefix="t")
    customer = gateway.customer_create(email="a@example.com", idempotency_key="c1")
    setup = gateway.setup_create(customer_ref=customer, idempotency_key="s1")
    gateway.setup_confirm(setup.setup_ref, card=CARD_OK, expires=(3, 2031))
    method = gateway.setup_retrieve(setup.setup_ref).payment_method_ref
    assert gateway.card_expiry(method) == (3, 2031)
    assert gateway.card_expiry("pm_unknown") is None
