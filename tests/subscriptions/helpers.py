"""Subscriptions started on a buyer whose card is vaulted at the local Stripe server."""

from __future__ import annotations

import datetime as dt

from core.money import Money
from payments import services as payments
from payments.models import ChargeAttempt, LedgerEntry, LedgerKind
from storefront.models import Customer
from subscriptions import services
from subscriptions.models import Plan, Subscription
from tests import gateway_helpers as gw
from tests.factories import ProductFactory

UTC = dt.UTC


def at(y, m, d, h=12):
    return dt.datetime(y, m, d, h, 0, tzinfo=UTC)


def vaulted(email: str = "sub@example.com", card: str = gw.CARD_OK) -> tuple[Customer, str, str]:
    """A buyer with a card saved at the gateway: (customer, customer_ref, payment_method_ref)."""
    gc = payments.gateway_customer_get_or_create(email=email)
    setup = payments.card_setup_create(customer=gc, idempotency_key=f"setup_{email}")
    status = gw.confirm_card_setup(setup.setup_ref, card)
    if status == "requires_action":  # a 3-D Secure card: the buyer authenticates on-session
        gw._client().v1.setup_intents.confirm(setup.setup_ref)
        status = "succeeded"
    assert status == "succeeded"
    method = payments.card_setup_retrieve(setup_ref=setup.setup_ref).payment_method_ref
    payments.card_attach(customer=gc, payment_method_ref=method)
    payments.vault_save(customer=gc, payment_method_ref=method, consent_text="renewals")
    customer, _ = Customer.objects.get_or_create(email=email, defaults={"gateway_customer": gc})
    return customer, gc.gateway_ref, method


def new_card(customer_ref: str, card: str = gw.CARD_OK) -> str:
    from payments.models import GatewayCustomer

    gc = GatewayCustomer.objects.get(gateway_ref=customer_ref)
    setup = payments.card_setup_create(customer=gc, idempotency_key=f"nc_{card}_{customer_ref}")
    assert gw.confirm_card_setup(setup.setup_ref, card) == "succeeded"
    return payments.card_setup_retrieve(setup_ref=setup.setup_ref).payment_method_ref


def plan(*, price=1500, unit="month", count=1, trial_days=0, setup_fee=0, instalments=None, **kw):
    product = ProductFactory(price_amount=price, **kw)
    return Plan.objects.create(
        product=product,
        kind="instalments" if instalments else "subscription",
        interval_unit=unit,
        interval_count=count,
        trial_days=trial_days,
        setup_fee_amount=setup_fee,
        instalments=instalments,
    )


def start(plan_row, *, started_at, email="sub@example.com", card=gw.CARD_OK, first_paid=None):
    from django.db import transaction

    customer, customer_ref, method = vaulted(email, card)
    with transaction.atomic():
        return services.subscription_start(
            plan=plan_row,
            customer_id=customer.pk,
            order_id=None,
            line_key="",
            amount=Money(plan_row.product.price_amount, "USD"),
            tax_amount=0,
            started_at=started_at,
            customer_ref=customer_ref,
            payment_method_ref=method,
            first_paid=(not plan_row.trial_days) if first_paid is None else first_paid,
        )


def ledger_charges(sub: Subscription) -> list[tuple[str, int]]:
    return sorted(
        LedgerEntry.objects.filter(kind=LedgerKind.CHARGE, reference=sub.reference).values_list(
            "gateway_ref", "amount"
        )
    )


def gateway_charges(sub: Subscription) -> list[tuple[str, int]]:
    """Succeeded payments at the gateway for this subscription's attempts (by metadata)."""
    keys = set(
        ChargeAttempt.objects.filter(reference=sub.reference).values_list(
            "idempotency_key", flat=True
        )
    )
    return sorted(
        (pi.id, pi.amount)
        for pi in gw.payment_intents()
        if pi.status == "succeeded" and pi.metadata["attempt"] in keys
    )
