"""The buyer's saved card (the vault): saved with its consent, found by the buyer's address."""

from __future__ import annotations

from django.utils import timezone

from core.fixedsql import FixedQuery
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


def _methods_for(key: str):
    """The saved cards of the buyer whose `email_key` is `key` (normalised by the caller, not
    here: a FixedQuery keeps the SQL and would skip a normalisation done inside it)."""
    return SavedPaymentMethod.objects.filter(customer__email=key).order_by("-created_at")


_METHOD_FOR = FixedQuery(
    SavedPaymentMethod, lambda email: _methods_for(email).select_related("customer")
)


def vault_method_for(*, email: str) -> SavedPaymentMethod | None:
    return _METHOD_FOR.first(str(email_key(email)))


def vault_method_refs_sql(*, email: str) -> tuple[str, tuple]:
    """SQL (and its params) for `vault_method_for`'s card and gateway customer references, one
    row of two columns or none: for a caller that reads them within a statement of its own."""
    return _METHOD_REFS.sql(str(email_key(email)))


_METHOD_REFS = FixedQuery(
    SavedPaymentMethod,
    lambda email: _methods_for(email).values_list("gateway_ref", "customer__gateway_ref")[:1],
)
