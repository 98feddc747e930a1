"""The buyer's saved card (the vault): saved with its consent, found by the buyer's address."""

from __future__ import annotations

from django.utils import timezone

from core.identity import email_key
from core.returning import insert_returning
from payments.models import GatewayCustomer, SavedPaymentMethod


def vault_save(
    *, customer: GatewayCustomer, payment_method_ref: str, consent_text: str
) -> SavedPaymentMethod:
    method = insert_returning(  # one statement; a card saved before keeps its first consent
        SavedPaymentMethod(
            customer=customer,
            gateway_ref=payment_method_ref,
            consent_text=consent_text[:300],
            consent_at=timezone.now(),
        )
    )
    if method is None:
        method = SavedPaymentMethod.objects.get(customer=customer, gateway_ref=payment_method_ref)
    return method


def vault_method_for(*, email: str) -> SavedPaymentMethod | None:
    return (
        SavedPaymentMethod.objects.select_related("customer")
        .filter(customer__email=email_key(email))
        .order_by("-created_at")
        .first()
    )
