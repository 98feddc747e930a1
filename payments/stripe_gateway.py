"""Stripe implementation of the gateway protocol (the only module that imports `stripe`).

It runs unchanged against Stripe and against localstripe; where the two differ (see
shared notes), both behaviours are mapped onto the same results.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Mapping
from typing import Any

import stripe

from core.cpu_slots import waiting
from core.money import Money
from core.outbound import KeptAliveClient, TransportError, proxy_for
from payments.gateway import (
    ChargeRequest,
    ConnectedAccount,
    DisputeResult,
    GatewayAuthFailed,
    GatewayEvent,
    GatewayRejected,
    GatewayUnavailable,
    PaymentResult,
    PaymentStatus,
    RefundResult,
    ReversalResult,
    SetupResult,
    TransferResult,
    store_idempotency_key,
)
from payments.stripe_values import (
    DECLINE_CODES,
    _event_text,
    _get,
    _plain,
    connected_account,
    dispute_funds,
    reversal_result,
    setup_result,
    transfer_result,
)

logger = logging.getLogger(__name__)

_UNEXPECTED = (
    "Unexpected error communicating with Stripe.  If this problem persists, let us know at "
    "support@stripe.com."
)
_TLS = (
    "Could not verify Stripe's SSL certificate.  Please make sure that your network is not "
    "intercepting certificates.  If this problem persists, let us know at support@stripe.com."
)
_LOCAL = (
    "Unexpected error communicating with Stripe. It looks like there's probably a "
    "configuration issue locally.  If this problem persists, let us know at support@stripe.com."
)


class KeptAliveHTTPClient(stripe.HTTPClient):
    """The SDK's requests go out through core.outbound.KeptAliveClient; each fault is the
    APIConnectionError, message and `should_retry` that stripe.RequestsClient raises for it
    (its `_handle_request_error`; tests/payments/test_gateway_transport.py checks both)."""

    name = "kept-alive"

    def __init__(self, *, timeout: float):
        super().__init__()
        self.transport = KeptAliveClient(timeout=timeout, ca_file=stripe.ca_bundle_path)

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        try:
            return self.transport.request(method, url, headers or {}, post_data)
        except TransportError as exc:
            raise _connection_error(
                _TLS if exc.name == "SSLError" else _UNEXPECTED, str(exc), exc.retryable
            ) from exc
        except Exception as exc:
            err = f"A {type(exc).__name__} was raised"
            err += f" with error message {exc}" if str(exc) else " with no error message"
            raise _connection_error(_LOCAL, err, False) from exc

    def close(self):
        self.transport.close()


def _connection_error(msg: str, err: str, should_retry: bool) -> stripe.APIConnectionError:
    text = f"{textwrap.fill(msg)}\n\n(Network error: {err})"
    return stripe.APIConnectionError(text, should_retry=should_retry)


class StripeGateway:
    def __init__(self, *, secret_key: str, api_base: str | None, timeout: float = 10.0):
        self.is_local = bool(api_base)
        self.api_base = api_base
        base = {"api": api_base} if api_base else None
        # Behind a proxy named by the environment, requests (which honours it on each call)
        # as before; otherwise our kept-alive transport (a third of the SDK's CPU per call).
        proxied = proxy_for(api_base or stripe.DEFAULT_API_BASE)
        self._http_client: stripe.HTTPClient = (
            stripe.RequestsClient(timeout=timeout)
            if proxied
            else KeptAliveHTTPClient(timeout=timeout)
        )
        self.client = stripe.StripeClient(
            secret_key or "sk_test_local",
            base_addresses=base,  # type: ignore[arg-type]
            max_network_retries=0,  # our own code retries with the same idempotency key
            http_client=self._http_client,
        )

    # --- plumbing ---------------------------------------------------------------------
    def _call(self, fn, *args, **kwargs):
        try:
            with waiting():  # no CPU slot held while the gateway thinks (core/cpu_slots.py)
                return fn(*args, **kwargs)
        except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
            raise GatewayUnavailable(str(exc)) from exc
        except stripe.APIError as exc:
            raise GatewayUnavailable(str(exc)) from exc
        except stripe.AuthenticationError as exc:
            raise GatewayAuthFailed(f"authentication: {exc.user_message or exc}") from exc
        except (stripe.IdempotencyError, stripe.PermissionError) as exc:
            raise GatewayRejected(str(exc)) from exc

    def _call_strict(self, fn, *args, **kwargs):
        """`_call` for requests with no card outcome: any refusal is a GatewayRejected."""
        try:
            return self._call(fn, *args, **kwargs)
        except stripe.StripeError as exc:
            raise GatewayRejected(str(exc)) from exc

    def ping(self) -> None:
        try:
            with waiting():
                self.client.v1.balance.retrieve()
        except stripe.InvalidRequestError:
            pass  # reachable; localstripe may not know the endpoint
        except (stripe.APIConnectionError, stripe.APIError) as exc:
            raise GatewayUnavailable(str(exc)) from exc

    # --- customers and the vault ---------------------------------------------------------
    def customer_create(self, *, email: str, idempotency_key: str) -> str:
        customer = self._call_strict(
            self.client.v1.customers.create,
            params={"email": email},
            options={"idempotency_key": store_idempotency_key(idempotency_key)},
        )
        return customer.id

    def setup_create(self, *, customer_ref: str, idempotency_key: str) -> SetupResult:
        params: dict[str, Any] = {"customer": customer_ref, "usage": "off_session"}
        intent = self._call_strict(
            self.client.v1.setup_intents.create,
            params=params,
            options={"idempotency_key": store_idempotency_key(idempotency_key)},
        )
        return setup_result(intent)

    def setup_retrieve(self, setup_ref: str) -> SetupResult:
        # Its card expanded: the issuing country (tax evidence) comes in the same answer.
        intent = self._call_strict(
            self.client.v1.setup_intents.retrieve,
            setup_ref,
            params={"expand": ["payment_method"]},
        )
        return setup_result(intent)

    def card_expiry(self, payment_method_ref: str) -> tuple[int, int] | None:
        """(exp_month, exp_year) of a saved card, for expiry reminders; None if not a card."""
        method = self._call_strict(self.client.v1.payment_methods.retrieve, payment_method_ref)
        card = _get(method, "card")
        month, year = _get(card, "exp_month"), _get(card, "exp_year")
        if not isinstance(month, int) or not isinstance(year, int):
            return None
        return month, year

    def customer_redact(self, customer_ref: str, *, email: str) -> None:
        # Idempotent by nature (sets the same value again), so it needs no key.
        self._call_strict(self.client.v1.customers.update, customer_ref, params={"email": email})

    def payment_method_country(self, payment_method_ref: str) -> str:
        method = self._call(self.client.v1.payment_methods.retrieve, payment_method_ref)
        card = _get(method, "card")
        return (_get(card, "country", "") or "") if card is not None else ""

    def payment_method_attach(self, *, payment_method_ref: str, customer_ref: str) -> None:
        try:
            self._call(
                self.client.v1.payment_methods.attach,
                payment_method_ref,
                params={"customer": customer_ref},
            )
        except stripe.InvalidRequestError as exc:
            # "Already attached": fine if to this customer (a confirmed SetupIntent attaches),
            # a refusal if to another one (Stripe words both alike).
            if "already" in str(exc).lower():
                method = self._call_strict(
                    self.client.v1.payment_methods.retrieve, payment_method_ref
                )
                if _get(method, "customer") == customer_ref:
                    return
            raise GatewayRejected(str(exc)) from exc
        except stripe.CardError as exc:
            raise GatewayRejected(str(exc)) from exc

    # --- payments -------------------------------------------------------------------------
    def charge(self, request: ChargeRequest) -> PaymentResult:
        params: dict[str, Any] = {
            "amount": request.amount.amount,
            "currency": request.amount.currency.lower(),
            "customer": request.customer_ref,
            "payment_method": request.payment_method_ref,
            "confirm": True,
            "metadata": dict(request.metadata),
            "payment_method_types": ["card"],
        }
        if request.off_session:
            params["off_session"] = True
        try:
            intent = self._call(
                self.client.v1.payment_intents.create,
                params=params,
                options={"idempotency_key": store_idempotency_key(request.idempotency_key)},
            )
        except stripe.CardError as exc:
            return self._card_error_result(exc, request)
        except stripe.InvalidRequestError as exc:
            code = _get(exc, "code") or getattr(exc, "code", None)
            if code in DECLINE_CODES or "declined" in str(exc).lower():
                return self._card_error_result(exc, request)
            raise GatewayRejected(str(exc)) from exc
        return self._payment_result(intent)

    def _card_error_result(self, exc: stripe.StripeError, request: ChargeRequest) -> PaymentResult:
        code = getattr(exc, "code", None) or "card_declined"
        error = getattr(exc, "error", None)
        intent = _get(error, "payment_intent") if error is not None else None
        ref = _get(intent, "id") if intent is not None else None
        secret = _get(intent, "client_secret") if intent is not None else None
        if ref is None and error is not None:
            # localstripe names only the failed charge; its intent is what reconciliation reads.
            ref = self._intent_of_charge(_get(error, "charge"))
        if code == "authentication_required":
            return PaymentResult(
                status=PaymentStatus.REQUIRES_ACTION,
                payment_ref=ref,
                amount=request.amount,
                client_secret=secret,
                decline_code=code,
                message="The bank asks the buyer to confirm this payment.",
            )
        decline = _get(error, "decline_code") if error is not None else None
        return PaymentResult(
            status=PaymentStatus.DECLINED,
            payment_ref=ref,
            amount=request.amount,
            decline_code=decline or code,
            message=getattr(exc, "user_message", None) or "The card was declined.",
        )

    def _intent_of_charge(self, charge: Any) -> str | None:
        charge_id = charge if isinstance(charge, str) else _get(charge, "id")
        if not charge_id:
            return None
        try:
            found = self._call(self.client.v1.charges.retrieve, charge_id)
        except (GatewayUnavailable, GatewayRejected, stripe.StripeError):
            return None  # the decline stands; reconciliation finds the intent by metadata
        pi = _get(found, "payment_intent")
        return pi if isinstance(pi, str) or pi is None else _get(pi, "id")

    def payment_retrieve(self, payment_ref: str) -> PaymentResult:
        # Stripe returns latest_charge as an id unless expanded; the refunded amount is on it.
        intent = self._call_strict(
            self.client.v1.payment_intents.retrieve,
            payment_ref,
            params={"expand": ["latest_charge"]},
        )
        return self._payment_result(intent)

    @staticmethod
    def _payment_result(intent: Any) -> PaymentResult:
        raw = _get(intent, "status", "")
        last_error = _get(intent, "last_payment_error")
        if raw == "succeeded":
            status = PaymentStatus.SUCCEEDED
        elif raw == "processing":
            status = PaymentStatus.PROCESSING
        elif raw in ("requires_action", "requires_confirmation"):
            status = PaymentStatus.REQUIRES_ACTION
        elif raw == "canceled":
            status = PaymentStatus.CANCELED
        else:  # requires_payment_method: declined, or authentication failed
            status = PaymentStatus.DECLINED
        decline = None
        message = ""
        if last_error is not None:
            decline = _get(last_error, "decline_code") or _get(last_error, "code")
            message = _get(last_error, "message", "")
        elif status is PaymentStatus.DECLINED:
            decline = "authentication_failed"
        metadata = _plain(_get(intent, "metadata"))
        if hasattr(metadata, "to_dict"):
            metadata = metadata.to_dict()
        refunded = 0
        charge = _get(intent, "latest_charge")
        if charge is not None and not isinstance(charge, str):
            refunded = int(_get(charge, "amount_refunded", 0) or 0)
        currency = (_get(intent, "currency") or "usd").upper()
        customer = _get(intent, "customer")
        if customer is not None and not isinstance(customer, str):
            customer = _get(customer, "id")
        return PaymentResult(
            status=status,
            payment_ref=intent.id,
            amount=Money(int(_get(intent, "amount", 0)), currency),
            client_secret=_get(intent, "client_secret"),
            decline_code=decline,
            message=message,
            metadata={str(k): str(v) for k, v in dict(metadata).items()},
            amount_refunded=refunded,
            customer_ref=customer,
            created=int(_get(intent, "created", 0) or 0),
        )

    def _list_intents(self, params: dict[str, Any]):
        params = {**params, "expand": ["data.latest_charge"]}
        page = self._call_strict(self.client.v1.payment_intents.list, params=params)
        while True:
            yield from page.data
            if not page.has_more or not page.data:
                return
            page = self._call_strict(
                self.client.v1.payment_intents.list,
                params={**params, "starting_after": page.data[-1].id},
            )

    def payments_recent(self, *, created_after: int, limit: int = 100) -> list[PaymentResult]:
        params: dict[str, Any] = {"limit": limit}
        if not self.is_local:  # localstripe rejects list filters; it holds little data
            params["created"] = {"gte": created_after}
        return [
            self._payment_result(i)
            for i in self._list_intents(params)
            if int(_get(i, "created", 0)) >= created_after
        ]

    def payments_find(self, *, metadata_key: str, metadata_value: str) -> list[PaymentResult]:
        if not self.is_local:
            result = self._call_strict(
                self.client.v1.payment_intents.search,
                params={"query": f"metadata['{metadata_key}']:'{metadata_value}'"},
            )
            return [self._payment_result(i) for i in result.data]
        return [
            r
            for r in (self._payment_result(i) for i in self._list_intents({"limit": 100}))
            if r.metadata.get(metadata_key) == metadata_value
        ]

    # --- refunds ----------------------------------------------------------------------------
    def refund_create(
        self,
        *,
        payment_ref: str,
        amount: Money,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> RefundResult:
        params: dict[str, Any] = {"payment_intent": payment_ref, "amount": amount.amount}
        if metadata:
            params["metadata"] = dict(metadata)
        try:
            refund = self._call(
                self.client.v1.refunds.create,
                params=params,
                options={"idempotency_key": store_idempotency_key(idempotency_key)},
            )
        except stripe.InvalidRequestError as exc:
            raise GatewayRejected(str(exc)) from exc
        return self._refund_result(refund, fallback=amount, payment_ref=payment_ref)

    @staticmethod
    def _refund_result(
        refund: Any, *, fallback: Money | None = None, payment_ref: str | None = None
    ) -> RefundResult:
        status = _get(refund, "status", "succeeded")
        if status == "canceled":
            status = "failed"
        currency = (_get(refund, "currency") or (fallback.currency if fallback else "usd")).upper()
        amount = int(_get(refund, "amount", fallback.amount if fallback else 0))
        pi = _get(refund, "payment_intent")
        if pi is not None and not isinstance(pi, str):
            pi = _get(pi, "id")
        return RefundResult(
            refund_ref=refund.id,
            status=status,
            amount=Money(amount, currency),
            payment_ref=pi or payment_ref,
            metadata={str(k): str(v) for k, v in _plain(_get(refund, "metadata")).items()},
        )

    def refunds_list(self, *, payment_ref: str) -> list[RefundResult]:
        params: dict[str, Any] = {"payment_intent": payment_ref, "limit": 100}
        page = self._call_strict(self.client.v1.refunds.list, params=params)
        found: list[RefundResult] = []
        while True:
            found += [self._refund_result(r, payment_ref=payment_ref) for r in page.data]
            if not page.has_more or not page.data:
                return found
            page = self._call_strict(
                self.client.v1.refunds.list,
                params={**params, "starting_after": page.data[-1].id},
            )

    def refund_retrieve(self, refund_ref: str) -> RefundResult:
        refund = self._call_strict(self.client.v1.refunds.retrieve, refund_ref)
        result = self._refund_result(refund)
        if result.payment_ref is None:  # localstripe names only the charge
            charge = _get(refund, "charge")
            result = RefundResult(
                refund_ref=result.refund_ref,
                status=result.status,
                amount=result.amount,
                payment_ref=self.charge_payment_ref(
                    charge if isinstance(charge, str) else _get(charge, "id", "")
                ),
                metadata=result.metadata,
            )
        return result

    def charge_payment_ref(self, charge_ref: str) -> str | None:
        if not charge_ref:
            return None
        found = self._call_strict(self.client.v1.charges.retrieve, charge_ref)
        pi = _get(found, "payment_intent")
        return pi if isinstance(pi, str) or pi is None else _get(pi, "id")

    def dispute_retrieve(self, dispute_ref: str) -> DisputeResult:
        # localstripe has no disputes of its own: devtools/localstripe_disputes.py adds them.
        dispute = self._call_strict(self.client.v1.disputes.retrieve, dispute_ref)
        pi = _get(dispute, "payment_intent")
        if pi is not None and not isinstance(pi, str):
            pi = _get(pi, "id")
        if pi is None:
            charge = _get(dispute, "charge")
            pi = self.charge_payment_ref(
                charge if isinstance(charge, str) else _get(charge, "id", "")
            )
        return DisputeResult(
            dispute_ref=dispute.id,
            payment_ref=pi,
            amount=Money(
                int(_get(dispute, "amount", 0)), (_get(dispute, "currency") or "usd").upper()
            ),
            status=_get(dispute, "status", ""),
            reason=_get(dispute, "reason", ""),
            evidence_due_by=_get(_get(dispute, "evidence_details", {}), "due_by"),
            **dispute_funds(_get(dispute, "balance_transactions")),
        )

    # --- webhooks ---------------------------------------------------------------------------
    def event_parse(self, *, payload: bytes, signature: str, secret: str) -> GatewayEvent:
        """Verify the signature on the raw body; raise ValueError for anything not genuine."""
        if not secret:
            # An empty key would make every HMAC computable by anyone.
            raise ValueError("no webhook signing secret configured")
        try:
            event = stripe.Webhook.construct_event(payload, signature or "", secret)
        except stripe.SignatureVerificationError as exc:
            raise ValueError(f"bad signature: {exc}") from exc
        except Exception as exc:  # signed, but not a JSON object the SDK can read
            raise ValueError(f"malformed event: {type(exc).__name__}") from exc
        try:
            obj = event["data"]["object"]
            if not isinstance(obj, (dict, stripe.StripeObject)):
                raise TypeError("data.object is not an object")
            created = int(_get(event, "created", 0))
            return GatewayEvent(
                event_id=_event_text(_get(event, "id"), "id", required=True),
                event_type=_event_text(_get(event, "type"), "type", required=True),
                object_type=_event_text(_get(obj, "object"), "data.object.object"),
                object_id=_event_text(_get(obj, "id"), "data.object.id"),
                created=created,
                account_ref=_event_text(_get(event, "account"), "account"),
            )
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            # signed, but not an event
            raise ValueError(f"malformed event: {exc}") from exc

    # --- Connect --------------------------------------------------------------------------
    def connected_account_create(
        self,
        *,
        email: str,
        country: str,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> ConnectedAccount:
        account = self._call_strict(
            self.client.v1.accounts.create,
            params={
                "type": "express",
                "email": email,
                "country": country,
                "capabilities": {
                    "card_payments": {"requested": True},
                    "transfers": {"requested": True},
                },
                "metadata": dict(metadata or {}),
            },
            options={"idempotency_key": store_idempotency_key(idempotency_key)},
        )
        return connected_account(account)

    def connected_account_retrieve(self, account_ref: str) -> ConnectedAccount:
        return connected_account(self._call_strict(self.client.v1.accounts.retrieve, account_ref))

    def connected_account_link(self, *, account_ref: str, refresh_url: str, return_url: str) -> str:
        link = self._call_strict(
            self.client.v1.account_links.create,
            params={
                "account": account_ref,
                "type": "account_onboarding",
                "refresh_url": refresh_url,
                "return_url": return_url,
            },
        )
        return str(link["url"])

    def payment_charge_ref(self, payment_ref: str) -> str | None:
        """The charge (ch_…) behind a payment: what a transfer's source_transaction names."""
        intent = self._call_strict(self.client.v1.payment_intents.retrieve, payment_ref)
        latest = _get(intent, "latest_charge")
        if latest is None:
            charges = _get(_get(intent, "charges", {}), "data", []) or []
            latest = charges[-1] if charges else None
        if latest is None:
            return None
        return latest if isinstance(latest, str) else _get(latest, "id")

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
        params: dict[str, Any] = {
            "amount": amount.amount,
            "currency": amount.currency.lower(),
            "destination": destination,
            "transfer_group": transfer_group,
            "metadata": dict(metadata),
        }
        if source_charge_ref:
            params["source_transaction"] = source_charge_ref
        transfer = self._call_strict(
            self.client.v1.transfers.create,
            params=params,
            options={"idempotency_key": store_idempotency_key(idempotency_key)},
        )
        return transfer_result(transfer)

    def transfers_find(self, *, transfer_group: str) -> list[TransferResult]:
        page = self._call_strict(
            self.client.v1.transfers.list,
            params={"transfer_group": transfer_group, "limit": 100},
        )
        return [transfer_result(t) for t in page.data]

    def transfer_reversal_create(
        self,
        *,
        transfer_ref: str,
        amount: Money,
        idempotency_key: str,
        metadata: Mapping[str, str],
    ) -> ReversalResult:
        reversal = self._call_strict(
            self.client.v1.transfers.reversals.create,
            transfer_ref,
            params={"amount": amount.amount, "metadata": dict(metadata)},
            options={"idempotency_key": store_idempotency_key(idempotency_key)},
        )
        return reversal_result(reversal, transfer_ref)

    def transfer_reversals_list(self, *, transfer_ref: str) -> list[ReversalResult]:
        page = self._call_strict(
            self.client.v1.transfers.reversals.list, transfer_ref, params={"limit": 100}
        )
        return [reversal_result(r, transfer_ref) for r in page.data]
