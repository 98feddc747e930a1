"""An in-process gateway that keeps its objects in memory: the demo's history is charged
through it (storefront/demo_history.py), hundreds of orders in seconds.

It answers the whole `PaymentGateway` protocol the way Stripe does for the calls the
checkout, upsell, follow-up, refund and transfer services make: a card's outcome is chosen
by the payment method the buyer's "browser" set up (`setup_confirm`), idempotency keys
replay the first answer (as Stripe's do, per store), and refunds never exceed the charge.
Nothing leaves the process, so the payments it made exist only in our ledger afterwards.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Mapping

from core.money import Money
from payments.gateway import (
    ChargeRequest,
    ConnectedAccount,
    DisputeResult,
    GatewayEvent,
    GatewayRejected,
    PaymentResult,
    PaymentStatus,
    RefundResult,
    ReversalResult,
    SetupResult,
    TransferResult,
    store_idempotency_key,
)

# The cards the buyer's browser may set up (`setup_confirm(card=…)`).
CARD_OK = "ok"
CARD_DECLINE = "decline"  # declined when charged (insufficient funds)
CARD_3DS = "3ds"  # every off-session charge asks for authentication


class MemoryGateway:
    """Objects live in dicts; ids are `<prefix>_mem<n>` with a per-instance prefix."""

    def __init__(self, prefix: str = "mem") -> None:
        self._prefix = prefix
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._replies: dict[str, object] = {}
        self.customers: dict[str, str] = {}
        self.setups: dict[str, dict] = {}
        self.methods: dict[str, dict] = {}
        self.payments: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self.transfers: dict[str, dict] = {}
        self.reversals: dict[str, dict] = {}
        self.accounts: dict[str, ConnectedAccount] = {}
        self.disputes: dict[str, DisputeResult] = {}  # set by tests: what the bank opened

    def _id(self, kind: str) -> str:
        return f"{kind}_{self._prefix}{next(self._ids):06d}"

    def _once(self, key: str, make):
        """The same idempotency key answers what it answered first (namespaced per store)."""
        key = store_idempotency_key(key)
        with self._lock:
            if key not in self._replies:
                self._replies[key] = make()
            return self._replies[key]

    # --- the browser's side (Stripe.js) ---------------------------------------------------
    def setup_confirm(
        self, setup_ref: str, *, card: str = CARD_OK, expires: tuple[int, int] = (12, 2034)
    ) -> None:
        """What confirmCardSetup does in the buyer's browser: a card exists for the setup
        (expiring at the end of `expires`, (month, year))."""
        pm = self._id("pm")
        # As Stripe does, a succeeded setup's card is attached to the setup's customer.
        customer = self.setups[setup_ref]["customer"]
        self.methods[pm] = {"card": card, "customer": customer, "expires": expires}
        self.setups[setup_ref].update(status="succeeded", payment_method_ref=pm)

    # --- the protocol ---------------------------------------------------------------------
    def card_expiry(self, payment_method_ref: str) -> tuple[int, int] | None:
        method = self.methods.get(payment_method_ref)
        return None if method is None else method["expires"]

    def ping(self) -> None:
        return None

    def customer_create(self, *, email: str, idempotency_key: str) -> str:
        def make() -> str:
            ref = self._id("cus")
            self.customers[ref] = email
            return ref

        return self._once(idempotency_key, make)

    def _setup(self, ref: str) -> SetupResult:
        s = self.setups[ref]
        return SetupResult(
            ref, f"{ref}_secret", s["status"], s["payment_method_ref"], customer_ref=s["customer"]
        )

    def setup_create(self, *, customer_ref: str, idempotency_key: str) -> SetupResult:
        def make() -> str:
            ref = self._id("seti")
            self.setups[ref] = {
                "customer": customer_ref,
                "status": "requires_payment_method",
                "payment_method_ref": None,
            }
            return ref

        return self._setup(self._once(idempotency_key, make))

    def setup_retrieve(self, setup_ref: str) -> SetupResult:
        if setup_ref not in self.setups:
            raise GatewayRejected(f"No such setup_intent: {setup_ref}")
        return self._setup(setup_ref)

    def payment_method_attach(self, *, payment_method_ref: str, customer_ref: str) -> None:
        if payment_method_ref not in self.methods:
            raise GatewayRejected(f"No such payment_method: {payment_method_ref}")
        if self.methods[payment_method_ref]["customer"] not in (None, customer_ref):
            raise GatewayRejected("The payment method has already been attached to a customer.")
        self.methods[payment_method_ref]["customer"] = customer_ref

    def _payment(self, ref: str) -> PaymentResult:
        p = self.payments[ref]
        return PaymentResult(
            status=p["status"],
            payment_ref=ref,
            amount=p["amount"],
            client_secret=f"{ref}_secret",
            decline_code=p["decline_code"],
            message=p["message"],
            metadata=dict(p["metadata"]),
            amount_refunded=p["refunded"],
            customer_ref=p["customer"],
            created=p["created"],
        )

    def charge(self, request: ChargeRequest) -> PaymentResult:
        def make() -> str:
            method = self.methods.get(request.payment_method_ref, {})
            # As Stripe refuses another customer's card (every card here comes from a setup,
            # which attaches it to its customer, so none is ever used unattached).
            if method.get("customer") not in (None, request.customer_ref):
                raise GatewayRejected("The payment method belongs to another customer.")
            card = method.get("card", CARD_OK)
            status, code, message = PaymentStatus.SUCCEEDED, None, ""
            if card == CARD_DECLINE:
                status, code = PaymentStatus.DECLINED, "insufficient_funds"
                message = "Your card has insufficient funds."
            elif card == CARD_3DS and request.off_session:
                status = PaymentStatus.REQUIRES_ACTION
            ref = self._id("pi")
            self.payments[ref] = {
                "status": status,
                "amount": request.amount,
                "decline_code": code,
                "message": message,
                "metadata": dict(request.metadata),
                "refunded": 0,
                "customer": request.customer_ref,
                "created": int(time.time()),
                "charge": self._id("ch"),
            }
            return ref

        return self._payment(self._once(request.idempotency_key, make))

    def payment_retrieve(self, payment_ref: str) -> PaymentResult:
        if payment_ref not in self.payments:
            raise GatewayRejected(f"No such payment_intent: {payment_ref}")
        return self._payment(payment_ref)

    def payments_find(self, *, metadata_key: str, metadata_value: str) -> list[PaymentResult]:
        return [
            self._payment(ref)
            for ref, p in self.payments.items()
            if p["metadata"].get(metadata_key) == metadata_value
        ]

    def payments_recent(self, *, created_after: int, limit: int = 100) -> list[PaymentResult]:
        found = [r for r, p in self.payments.items() if p["created"] >= created_after]
        return [self._payment(r) for r in reversed(found)][:limit]

    def _refund(self, ref: str) -> RefundResult:
        r = self.refunds[ref]
        return RefundResult(ref, "succeeded", r["amount"], r["payment"], dict(r["metadata"]))

    def refund_create(
        self,
        *,
        payment_ref: str,
        amount: Money,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> RefundResult:
        def make() -> str:
            payment = self.payments.get(payment_ref)
            if payment is None or payment["status"] != PaymentStatus.SUCCEEDED:
                raise GatewayRejected(f"No succeeded payment {payment_ref}")
            if payment["refunded"] + amount.amount > payment["amount"].amount:
                raise GatewayRejected("Refund amount is greater than the unrefunded amount")
            payment["refunded"] += amount.amount
            ref = self._id("re")
            self.refunds[ref] = {
                "amount": amount,
                "payment": payment_ref,
                "metadata": dict(metadata or {}),
            }
            return ref

        return self._refund(self._once(idempotency_key, make))

    def refunds_list(self, *, payment_ref: str) -> list[RefundResult]:
        return [self._refund(r) for r, v in self.refunds.items() if v["payment"] == payment_ref]

    def refund_retrieve(self, refund_ref: str) -> RefundResult:
        if refund_ref not in self.refunds:
            raise GatewayRejected(f"No such refund: {refund_ref}")
        return self._refund(refund_ref)

    def charge_payment_ref(self, charge_ref: str) -> str | None:
        return next((r for r, p in self.payments.items() if p["charge"] == charge_ref), None)

    def payment_charge_ref(self, payment_ref: str) -> str | None:
        payment = self.payments.get(payment_ref)
        return payment["charge"] if payment else None

    def dispute_retrieve(self, dispute_ref: str) -> DisputeResult:
        if dispute_ref not in self.disputes:
            raise GatewayRejected(f"No such dispute: {dispute_ref}")
        return self.disputes[dispute_ref]

    def event_parse(self, *, payload: bytes, signature: str, secret: str) -> GatewayEvent:
        raise GatewayRejected("The in-memory gateway sends no webhooks")

    # --- Connect --------------------------------------------------------------------------
    def connected_account_create(
        self,
        *,
        email: str,
        country: str,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> ConnectedAccount:
        def make() -> str:
            ref = self._id("acct")
            self.accounts[ref] = ConnectedAccount(ref, True, True, True)
            return ref

        return self.accounts[self._once(idempotency_key, make)]

    def connected_account_retrieve(self, account_ref: str) -> ConnectedAccount:
        # Accounts made elsewhere (the demo's, at the local Stripe server) count as onboarded.
        return self.accounts.get(account_ref, ConnectedAccount(account_ref, True, True, True))

    def connected_account_link(self, *, account_ref: str, refresh_url: str, return_url: str) -> str:
        return return_url

    def _transfer(self, ref: str) -> TransferResult:
        t = self.transfers[ref]
        reversed_amount = sum(
            v["amount"].amount for v in self.reversals.values() if v["transfer"] == ref
        )
        return TransferResult(
            ref,
            t["amount"],
            t["destination"],
            t["group"],
            reversed_amount,
            dict(t["metadata"]),
        )

    def transfer_create(
        self,
        *,
        amount: Money,
        destination: str,
        source_charge_ref: str | None,
        transfer_group: str,
        idempotency_key: str,
        metadata: Mapping[str, str],
    ) -> TransferResult:
        def make() -> str:
            ref = self._id("tr")
            self.transfers[ref] = {
                "amount": amount,
                "destination": destination,
                "group": transfer_group,
                "metadata": dict(metadata),
            }
            return ref

        return self._transfer(self._once(idempotency_key, make))

    def transfers_find(self, *, transfer_group: str) -> list[TransferResult]:
        return [
            self._transfer(r) for r, t in self.transfers.items() if t["group"] == transfer_group
        ]

    def transfer_reversal_create(
        self,
        *,
        transfer_ref: str,
        amount: Money,
        idempotency_key: str,
        metadata: Mapping[str, str],
    ) -> ReversalResult:
        def make() -> str:
            if transfer_ref not in self.transfers:
                raise GatewayRejected(f"No such transfer: {transfer_ref}")
            ref = self._id("trr")
            self.reversals[ref] = {
                "transfer": transfer_ref,
                "amount": amount,
                "metadata": dict(metadata),
            }
            return ref

        ref = self._once(idempotency_key, make)
        r = self.reversals[ref]
        return ReversalResult(ref, transfer_ref, r["amount"], dict(r["metadata"]))

    def transfer_reversals_list(self, *, transfer_ref: str) -> list[ReversalResult]:
        return [
            ReversalResult(r, transfer_ref, v["amount"], dict(v["metadata"]))
            for r, v in self.reversals.items()
            if v["transfer"] == transfer_ref
        ]
