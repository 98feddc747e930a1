"""Idempotency keys at the gateway are unique per store: every store shares one gateway
account, whose idempotency keys are one namespace."""

import ast
import inspect
import pathlib

import pytest
from django.db import connection

from payments import services
from payments.gateway import PaymentGateway, store_idempotency_key
from payments.stripe_gateway import StripeGateway

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def sent_keys(monkeypatch):
    """Every idempotency key the Stripe adapter sends, as sent."""
    keys: list[str] = []
    real = StripeGateway._call  # every request goes through it (_call_strict too)

    def spy(self, fn, *args, **kwargs):
        if "idempotency_key" in kwargs.get("options", {}):
            keys.append(kwargs["options"]["idempotency_key"])
        return real(self, fn, *args, **kwargs)

    monkeypatch.setattr(StripeGateway, "_call", spy)
    return keys


@pytest.mark.gateway
def test_the_same_buyer_in_two_stores_gets_two_customers_under_two_keys(
    tenant, other_tenant, stripe_api_base, sent_keys
):
    refs = []
    for store in (tenant, other_tenant):
        connection.set_tenant(store)
        refs.append(services.gateway_customer_get_or_create(email="Buyer@Example.com").gateway_ref)
    connection.set_tenant(tenant)
    assert refs[0] != refs[1]
    assert len(sent_keys) == 2 and sent_keys[0] != sent_keys[1]
    assert sent_keys[0].startswith(f"{tenant.schema_name}:")
    assert sent_keys[1].startswith(f"{other_tenant.schema_name}:")
    assert not any("buyer@example.com" in key.lower() for key in sent_keys)  # no email


def test_a_key_is_scoped_to_the_store_it_is_sent_from(tenant, other_tenant):
    connection.set_tenant(tenant)
    in_t1 = store_idempotency_key("cus_same")
    connection.set_tenant(other_tenant)
    in_t2 = store_idempotency_key("cus_same")
    connection.set_tenant(tenant)
    assert in_t1 != in_t2 and in_t1.endswith(":cus_same")


def _keyed_protocol_methods() -> set[str]:
    methods = set()
    for name, fn in inspect.getmembers(PaymentGateway, inspect.isfunction):
        params = inspect.signature(fn).parameters
        if "idempotency_key" in params or any(
            "ChargeRequest" in str(p.annotation) for p in params.values()
        ):
            methods.add(name)
    return methods


def test_every_key_the_stripe_adapter_sends_is_scoped_to_the_store():
    """The enumeration: each gateway method that takes an idempotency key (customers, card
    setups, charges, refunds, connected accounts, transfers, reversals) sends it through
    store_idempotency_key, and nothing else in the code sends one to Stripe."""
    keyed = _keyed_protocol_methods()
    assert keyed == {
        "customer_create",
        "setup_create",
        "charge",
        "refund_create",
        "connected_account_create",
        "transfer_create",
        "transfer_reversal_create",
    }
    tree = ast.parse((ROOT / "payments" / "stripe_gateway.py").read_text())
    scoped_in: set[str] = set()
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        for method in (n for n in cls.body if isinstance(n, ast.FunctionDef)):
            for node in ast.walk(method):
                if isinstance(node, ast.Dict):
                    for key, value in zip(node.keys, node.values, strict=True):
                        if isinstance(key, ast.Constant) and key.value == "idempotency_key":
                            assert (
                                isinstance(value, ast.Call)
                                and getattr(value.func, "id", "") == "store_idempotency_key"
                            ), f"{method.name} sends an unscoped idempotency key"
                            scoped_in.add(method.name)
    assert scoped_in == keyed
    # Nobody but the adapter talks to Stripe, so no other key reaches the gateway.
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in {".venv", "node_modules", "tests", "bench", "devtools"}:
            continue
        if rel != pathlib.Path("payments/stripe_gateway.py"):
            assert "import stripe" not in path.read_text(encoding="utf-8"), rel


@pytest.mark.gateway
def test_every_keyed_gateway_call_of_a_checkout_and_refund_carries_the_store(
    tenant, client_for, stripe_api_base, sent_keys
):
    """Through the real flows: card setup, customer, charge and refund keys all start with
    this store's schema."""
    from tests.api.conftest import paid_order

    order = paid_order()
    services.refund_create(
        reference=order.reference, line_key=order.lines.get().line_key, amount=None
    )
    assert len(sent_keys) >= 4
    assert all(key.startswith(f"{tenant.schema_name}:") for key in sent_keys), sent_keys
