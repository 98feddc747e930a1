"""The payment gateway boundary: a small protocol, frozen request/result values, one factory.

Stripe objects never leave the adapter (`payments.stripe_gateway`). Card errors come back as
results, not exceptions; only a gateway we could not reach raises `GatewayUnavailable`, and
then the caller cannot know whether the charge happened (reconciliation finds out).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

from django.conf import settings
from django.db import connection

from core.money import Money


class GatewayUnavailable(Exception):
    """Network error, timeout or 5xx: the outcome of the request is unknown."""


class GatewayRejected(Exception):
    """The gateway refused a request that is not a card outcome (bad parameters, bad key)."""


def store_idempotency_key(key: str) -> str:
    """The idempotency key as the gateway sees it: prefixed with this store's schema.

    Every store of the platform shares one gateway account, where idempotency keys are one
    namespace: without the store, a key built from what two stores have in common (a buyer's
    email, an order number) would make the second store get the first store's object back.
    The adapter applies it to every key it sends, so no key builder can forget it."""
    return f"{connection.schema_name}:{key}"


class GatewayAuthFailed(GatewayRejected):
    """Our API key was refused: every request fails alike, so no one record is to blame (loops
    stop on it instead of counting it against each record)."""


class PaymentStatus(enum.StrEnum):
    SUCCEEDED = "succeeded"
    PROCESSING = "processing"  # accepted, not settled yet: wait for the webhook or re-read
    REQUIRES_ACTION = "requires_action"  # the buyer must authenticate on-session (3-D Secure)
    DECLINED = "declined"  # a card outcome: final for this attempt
    CANCELED = "canceled"


@dataclass(frozen=True)
class ChargeRequest:
    amount: Money
    customer_ref: str
    payment_method_ref: str
    idempotency_key: str  # sent on every retry of the same attempt
    off_session: bool
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PaymentResult:
    status: PaymentStatus
    payment_ref: str | None  # the gateway's id for the payment (PaymentIntent id)
    amount: Money | None = None
    client_secret: str | None = None  # for the on-session authentication step
    decline_code: str | None = None
    message: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    amount_refunded: int = 0
    customer_ref: str | None = None  # whose payment it is (reconciliation tells ours apart)
    created: int = 0  # unix seconds at the gateway


@dataclass(frozen=True)
class SetupResult:
    setup_ref: str
    client_secret: str
    status: str
    payment_method_ref: str | None
    # The customer the setup was made for: a gateway that attaches a succeeded setup's card
    # to it (Stripe does) needs no attach call (payments.services.card_attach_from_setup).
    customer_ref: str | None = None
    # The card's issuing country when the gateway sent it with the setup (None: not sent,
    # ask with payment_method_country; "": sent, unknown).
    card_country: str | None = None


@dataclass(frozen=True)
class RefundResult:
    refund_ref: str
    status: str  # succeeded, pending, failed (canceled is reported as failed)
    amount: Money
    payment_ref: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DisputeResult:
    dispute_ref: str
    payment_ref: str | None
    amount: Money
    status: str  # needs_response, under_review, won, lost, ...
    reason: str = ""
    evidence_due_by: int | None = None  # unix time
    # Whether the gateway took the disputed funds from the balance, and gave them back (a
    # won dispute). None: the gateway did not say; the status decides (payments.disputes).
    funds_withdrawn: bool | None = None
    funds_reinstated: bool | None = None


@dataclass(frozen=True)
class GatewayEvent:
    event_id: str
    event_type: str
    object_type: str
    object_id: str
    created: int
    account_ref: str = ""  # Connect events: the connected account the event is about


@dataclass(frozen=True)
class ConnectedAccount:
    """A store's connected account (Stripe Connect) as the gateway reports it."""

    account_ref: str
    charges_enabled: bool
    payouts_enabled: bool
    details_submitted: bool
    requirements_due: tuple[str, ...] = ()
    disabled_reason: str = ""


@dataclass(frozen=True)
class TransferResult:
    """Money sent to a connected account (Stripe Connect transfer)."""

    transfer_ref: str
    amount: Money
    destination: str
    transfer_group: str = ""
    amount_reversed: int = 0
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReversalResult:
    """Money taken back from a connected account (a transfer's reversal)."""

    reversal_ref: str
    transfer_ref: str
    amount: Money
    metadata: Mapping[str, str] = field(default_factory=dict)


class PaymentGateway(Protocol):
    def ping(self) -> None: ...

    def customer_create(self, *, email: str, idempotency_key: str) -> str: ...

    def setup_create(self, *, customer_ref: str, idempotency_key: str) -> SetupResult: ...

    def setup_retrieve(self, setup_ref: str) -> SetupResult: ...

    def payment_method_attach(self, *, payment_method_ref: str, customer_ref: str) -> None: ...

    def card_expiry(self, payment_method_ref: str) -> tuple[int, int] | None: ...

    # A buyer's erasure: the gateway's copy of their address is replaced by the pseudonym
    # (optional for a gateway: without it payments.services.gateway_customer_redact is a no-op).
    def customer_redact(self, customer_ref: str, *, email: str) -> None: ...

    # The card's issuing country (tax evidence). Optional for a gateway: without it the
    # order's evidence has no card country (payments.services.card_country).
    def payment_method_country(self, payment_method_ref: str) -> str: ...

    def charge(self, request: ChargeRequest) -> PaymentResult: ...

    def payment_retrieve(self, payment_ref: str) -> PaymentResult: ...

    def payments_find(self, *, metadata_key: str, metadata_value: str) -> list[PaymentResult]: ...

    def payments_recent(self, *, created_after: int, limit: int = 100) -> list[PaymentResult]: ...

    def refund_create(
        self,
        *,
        payment_ref: str,
        amount: Money,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> RefundResult: ...

    def refunds_list(self, *, payment_ref: str) -> list[RefundResult]: ...

    def refund_retrieve(self, refund_ref: str) -> RefundResult: ...

    def charge_payment_ref(self, charge_ref: str) -> str | None: ...

    def dispute_retrieve(self, dispute_ref: str) -> DisputeResult: ...

    def event_parse(self, *, payload: bytes, signature: str, secret: str) -> GatewayEvent: ...

    # --- Connect: the stores' own accounts (payments.connect) ----------------------------
    def connected_account_create(
        self,
        *,
        email: str,
        country: str,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> ConnectedAccount: ...

    def connected_account_retrieve(self, account_ref: str) -> ConnectedAccount: ...

    def connected_account_link(
        self, *, account_ref: str, refresh_url: str, return_url: str
    ) -> str: ...

    def payment_charge_ref(self, payment_ref: str) -> str | None: ...

    def transfer_create(
        self,
        *,
        amount: Money,
        destination: str,
        source_charge_ref: str | None,
        transfer_group: str,
        idempotency_key: str,
        metadata: Mapping[str, str],
    ) -> TransferResult: ...

    def transfers_find(self, *, transfer_group: str) -> list[TransferResult]: ...

    def transfer_reversal_create(
        self,
        *,
        transfer_ref: str,
        amount: Money,
        idempotency_key: str,
        metadata: Mapping[str, str],
    ) -> ReversalResult: ...

    def transfer_reversals_list(self, *, transfer_ref: str) -> list[ReversalResult]: ...


@lru_cache(maxsize=1)
def _default_gateway() -> PaymentGateway:
    from payments.stripe_gateway import StripeGateway

    return StripeGateway(
        secret_key=settings.STRIPE_SECRET_KEY,
        api_base=settings.STRIPE_API_BASE or None,
        timeout=settings.PAYMENT_GATEWAY_TIMEOUT_SECONDS,
    )


_override: PaymentGateway | None = None


def get_gateway(*, paid_by: str = "") -> PaymentGateway:
    """The configured gateway; tests may swap it with `use_gateway`. `paid_by` names the
    payment or transfer a refund or take-back is about: the seeded demo's have no gateway
    object and are answered by payments.demo instead."""
    if paid_by:
        from payments.demo import demo_gateway_for  # it reads the models

        demo = demo_gateway_for(paid_by)
        if demo is not None:
            return demo  # type: ignore[return-value]  # the calls a refund makes
    return _override if _override is not None else _default_gateway()


def use_gateway(gateway: PaymentGateway | None) -> None:
    global _override
    _override = gateway
    _default_gateway.cache_clear()
