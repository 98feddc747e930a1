"""Charging exactly once, the ledger, refunds and gateway webhooks.

The discipline (STYLE.md): an attempt row and its idempotency key are committed before the
gateway call; the call happens outside any transaction and without row locks; the outcome
is recorded afterwards under a fresh lock. A caller that cannot claim the attempt (someone
else is sending it) never calls the gateway.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, connection, transaction
from django.db.models import Sum
from django.utils import timezone

from core.fixedsql import FixedQuery
from core.identity import email_key
from core.money import Money
from core.returning import insert_returning, update_returning
from payments.fees import fee_columns_sql
from payments.gateway import (
    ChargeRequest,
    GatewayRejected,
    GatewayUnavailable,
    PaymentResult,
    PaymentStatus,
    SetupResult,
    get_gateway,
)
from payments.mismatches import mismatch_record, mismatches_resolve  # noqa: F401 (callers)
from payments.models import (
    AttemptStatus,
    ChargeAttempt,
    GatewayCustomer,
    LedgerEntry,
    LedgerKind,
    Refund,
    RefundStatus,
)
from payments.recording import (
    ATTEMPT_STATUS_FOR,
    ledger_charge_write,
    record_checked,
    record_from_in_flight,
)
from payments.selectors import ledger_line_totals  # noqa: F401 (callers import it from here)
from payments.vault import (  # noqa: F401 (callers)
    vault_method_for,
    vault_method_refs_sql,
    vault_save,
)

logger = logging.getLogger(__name__)

# Upper layers (storefront) register what should happen, inside the recording transaction,
# when an attempt reaches an outcome or a refund/chargeback lands. No upward imports.
OutcomeHandler = Callable[[ChargeAttempt], None]
LedgerHandler = Callable[[LedgerEntry], None]
_outcome_handlers: list[OutcomeHandler] = []
_ledger_handlers: list[LedgerHandler] = []


def outcome_handler_register(fn: OutcomeHandler) -> None:
    if fn not in _outcome_handlers:
        _outcome_handlers.append(fn)


def ledger_handler_register(fn: LedgerHandler) -> None:
    if fn not in _ledger_handlers:
        _ledger_handlers.append(fn)


class RefundRefused(ValueError):
    """A refund that would exceed what was charged for the line (or has nothing to refund)."""


# --- customers and the vault -------------------------------------------------------------


_CUSTOMER_BY_EMAIL = FixedQuery(
    GatewayCustomer, lambda email: GatewayCustomer.objects.filter(email=email)
)


def gateway_customer_get_or_create(*, email: str) -> GatewayCustomer:
    email = email_key(email)
    existing = _CUSTOMER_BY_EMAIL.first(str(email))
    if existing:
        return existing
    # No email in the key (keys show in the gateway's logs); the adapter adds the store.
    digest = hashlib.sha256(email.encode()).hexdigest()[:40]
    ref = get_gateway().customer_create(email=email, idempotency_key=f"cus_{digest}")
    try:
        with transaction.atomic():
            return GatewayCustomer.objects.create(email=email, gateway_ref=ref)
    except IntegrityError:  # a concurrent checkout by the same buyer won the race
        return GatewayCustomer.objects.get(email=email)


def card_setup_create(*, customer: GatewayCustomer, idempotency_key: str) -> SetupResult:
    """A card-setup intent the buyer completes on-session. Raises GatewayUnavailable/Rejected."""
    return get_gateway().setup_create(
        customer_ref=customer.gateway_ref, idempotency_key=idempotency_key
    )


def card_setup_retrieve(*, setup_ref: str) -> SetupResult:
    """The setup intent as the gateway has it now (status, the card it collected)."""
    return get_gateway().setup_retrieve(setup_ref)


def gateway_customer_redact(*, customer: GatewayCustomer, email: str) -> None:
    """Replace the gateway's copy of a buyer's address (their erasure). Raises
    GatewayUnavailable / GatewayRejected so the caller retries before writing anything."""
    redact = getattr(get_gateway(), "customer_redact", None)
    if redact is not None:
        redact(customer.gateway_ref, email=email)


def card_country(*, payment_method_ref: str) -> str:
    """The card's issuing country (ISO code) as the gateway reports it, or "" when unknown
    (tax evidence: a missing answer is no evidence, never an error)."""
    read = getattr(get_gateway(), "payment_method_country", None)
    if read is None:
        return ""
    try:
        return (read(payment_method_ref) or "").upper()[:2]
    except (GatewayUnavailable, GatewayRejected):
        return ""


def card_attach(*, customer: GatewayCustomer, payment_method_ref: str) -> None:
    """Attach the collected card to the buyer's gateway customer (GatewayRejected: declined)."""
    get_gateway().payment_method_attach(
        payment_method_ref=payment_method_ref, customer_ref=customer.gateway_ref
    )


def card_attach_from_setup(*, customer: GatewayCustomer, setup: SetupResult) -> None:
    """Attach the card a succeeded setup collected to the buyer's gateway customer, unless the
    gateway did already: Stripe attaches a SetupIntent's card to the customer the intent was
    made for when it succeeds, so a setup made for this customer costs no call."""
    if setup.customer_ref is None or setup.customer_ref != customer.gateway_ref:
        card_attach(customer=customer, payment_method_ref=setup.payment_method_ref or "")


def setup_card_country(setup: SetupResult) -> str:
    """The setup's card's issuing country: from the setup when the gateway sent it with it
    (StripeGateway expands the card), else asked (card_country)."""
    if setup.card_country is not None:
        return setup.card_country
    return card_country(payment_method_ref=setup.payment_method_ref or "")


def card_expiry(*, payment_method_ref: str) -> tuple[int, int] | None:
    """A saved card's (exp_month, exp_year). Raises GatewayUnavailable/Rejected."""
    return get_gateway().card_expiry(payment_method_ref)


# --- charge attempts -----------------------------------------------------------------------


def attempt_get_or_create(
    *,
    purpose: str,
    reference: str,
    amount: Money,
    customer_ref: str,
    payment_method_ref: str,
    off_session: bool,
    allocation: Mapping[str, int],
) -> tuple[ChargeAttempt, bool]:
    """The one attempt for `purpose`, created and committed if new. Unique on purpose."""
    if sum(allocation.values()) != amount.amount:
        raise ValueError("allocation must add up to the amount")
    # One statement: INSERT … ON CONFLICT DO NOTHING (committed, or in the caller's
    # transaction); a conflict means the attempt for this purpose exists, and it is read.
    with transaction.atomic(savepoint=False):  # as the claim: no commit after a dead client
        attempt = insert_returning(
            ChargeAttempt(
                purpose=purpose,
                idempotency_key=f"att_{uuid.uuid4().hex}",
                reference=reference,
                amount=amount.amount,
                currency=amount.currency,
                customer_ref=customer_ref,
                payment_method_ref=payment_method_ref,
                off_session=off_session,
                allocation=dict(allocation),
            ),
            computed=fee_columns_sql(),  # the fee this sale is made under, kept with it
        )
    if attempt is not None:
        return attempt, True
    return ChargeAttempt.objects.get(purpose=purpose), False


def attempt_cancel(*, attempt_id: int, reason: str) -> bool:
    """Cancel an attempt that was never sent (e.g. its primary payment failed)."""
    with transaction.atomic():
        updated = ChargeAttempt.objects.filter(pk=attempt_id, status=AttemptStatus.CREATED).update(
            status=AttemptStatus.CANCELED, message=reason[:300], finished_at=timezone.now()
        )
        if updated:
            attempt = ChargeAttempt.objects.get(pk=attempt_id)
            for handler in _outcome_handlers:
                handler(attempt)
    return bool(updated)


def _claim(attempt_id: int, *, allow_resend: bool) -> ChargeAttempt | None:
    """Move the attempt to IN_FLIGHT with one conditional UPDATE … RETURNING (committed on its
    own, autocommit); None if someone else has it. A resend skips a row another resend holds."""
    where = '"id" = %s AND "status" = %s'
    params: list = [attempt_id, AttemptStatus.CREATED]
    if allow_resend:
        where = f'"id" IN (SELECT "id" FROM "{ChargeAttempt._meta.db_table}" WHERE {where} OR '
        where += '("id" = %s AND "status" = %s) FOR UPDATE SKIP LOCKED)'
        params += [attempt_id, AttemptStatus.IN_FLIGHT]
    # In a transaction of its own, not autocommit: a process killed while its UPDATE waits for
    # the row's lock must not leave a claim committed behind it (autocommit would commit the
    # UPDATE when the lock comes, before the server notices the client is gone; the attempt
    # would then sit IN_FLIGHT, never sent, until reconciliation). BEGIN/COMMIT are no extra
    # statements.
    with transaction.atomic():
        rows = update_returning(
            ChargeAttempt,
            assignments='"status" = %s, "sends" = "sends" + 1, "sent_at" = %s',
            where=where,
            params=[AttemptStatus.IN_FLIGHT, timezone.now(), *params],
        )
    return rows[0] if rows else None


def attempt_execute(*, attempt_id: int, allow_resend: bool = False) -> ChargeAttempt:
    """Send the attempt to the gateway once, then record the outcome.

    Only the caller that moves the row CREATED → IN_FLIGHT calls the gateway; everyone else
    gets the row as it stands. `allow_resend` (reconciliation only) re-sends an IN_FLIGHT
    attempt with the *same* idempotency key after checking the gateway has no payment for it.
    """
    if any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks):
        # A gateway call must never run inside an open transaction (locks, lost commits).
        raise RuntimeError("attempt_execute must be called outside a transaction")
    attempt = _claim(attempt_id, allow_resend=allow_resend)
    if attempt is None:
        return ChargeAttempt.objects.get(pk=attempt_id)
    request = ChargeRequest(
        amount=attempt.money,
        customer_ref=attempt.customer_ref,
        payment_method_ref=attempt.payment_method_ref,
        idempotency_key=attempt.idempotency_key,
        off_session=attempt.off_session,
        # `tenant` tells this creator's payments apart from other creators' on one account.
        metadata={
            "attempt": attempt.idempotency_key,
            "purpose": attempt.purpose,
            "reference": attempt.reference,
            "tenant": connection.schema_name,
        },
    )
    try:
        result = get_gateway().charge(request)
    except GatewayUnavailable as exc:
        # Unknown outcome: stays IN_FLIGHT; reconciliation re-reads it from the gateway.
        logger.warning("gateway unavailable for %s: %s", attempt.purpose, exc)
        return attempt
    except GatewayRejected as exc:
        result = PaymentResult(
            status=PaymentStatus.DECLINED,
            payment_ref=None,
            decline_code="gateway_rejected",
            message=str(exc)[:300],
        )
    return attempt_record_result(attempt_id=attempt.pk, result=result)


def attempt_record_result(*, attempt_id: int, result: PaymentResult) -> ChargeAttempt:
    """Record a gateway outcome under a fresh lock; idempotent for a repeated outcome."""
    new_status = ATTEMPT_STATUS_FOR[result.status]
    with transaction.atomic():
        # A success's ledger rows are written by the same statement that records it.
        attempt = record_from_in_flight(attempt_id=attempt_id, to=new_status, result=result)
        if attempt is None:
            attempt, changed = record_checked(attempt_id, new_status, result)
            if not changed:
                return attempt  # a replay, a stale outcome, or a second payment (flagged)
            if new_status == AttemptStatus.SUCCEEDED:
                ledger_charge_write(attempt)
        for handler in _outcome_handlers:
            handler(attempt)
        return attempt


def attempt_refresh(*, attempt_id: int) -> ChargeAttempt:
    """Re-read an attempt's payment from the gateway and record what it says now."""
    attempt = ChargeAttempt.objects.get(pk=attempt_id)
    gateway = get_gateway()
    if attempt.gateway_ref:
        result = gateway.payment_retrieve(attempt.gateway_ref)
        return attempt_record_result(attempt_id=attempt.pk, result=result)
    found = gateway.payments_find(metadata_key="attempt", metadata_value=attempt.idempotency_key)
    if found:
        # Prefer a settled one; more than one is a duplicate for reconciliation to flag.
        found.sort(key=lambda r: r.status != PaymentStatus.SUCCEEDED)
        return attempt_record_result(attempt_id=attempt.pk, result=found[0])
    return attempt


# --- refunds ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineTax:
    """What the caller charged for a line: its total (tax included) and the tax part of it."""

    total: int
    tax: int


@dataclass(frozen=True)
class RefundLine:
    line_key: str
    tax: LineTax | None = None


def _tax_part(refunded_total: int, line_tax: LineTax | None) -> int:
    """Tax contained in the first `refunded_total` units of a line, rounded half up once.

    Taking the difference of two cumulative values makes a line's partial refunds add up to
    exactly its tax when the whole line has been refunded (no drift from rounding each one).
    """
    if line_tax is None or line_tax.total <= 0 or line_tax.tax <= 0:
        return 0
    value = Decimal(refunded_total) * Decimal(line_tax.tax) / Decimal(line_tax.total)
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def refund_create(
    *,
    reference: str,
    line_key: str,
    amount: Money | None,
    reason: str = "",
    requested_by: str = "",
    idempotency_key: str | None = None,
    line_tax: LineTax | None = None,
    guard: Callable[[], None] | None = None,
) -> Refund:
    """Refund part or all of one line (None: everything left on it). The amount is reserved
    under a lock on the line's charge rows before the gateway call, so concurrent refunds
    can never exceed the charge. Raises RefundRefused with the reason when it would, or when
    `guard` (the caller's own limit, run first in the reservation's transaction) does."""
    key = idempotency_key or f"ref_{uuid.uuid4().hex}"
    existing = Refund.objects.filter(idempotency_key=key).first()
    if existing:
        return existing
    try:
        with transaction.atomic():
            if guard is not None:
                guard()
            refund = _refund_reserve(
                reference=reference,
                line_key=line_key,
                amount=amount,
                reason=reason,
                requested_by=requested_by,
                key=key,
                line_tax=line_tax,
            )
    except IntegrityError:  # the same idempotency key raced us: that refund is the answer
        return Refund.objects.get(idempotency_key=key)
    return refund_execute(refund_id=refund.pk)


def refund_create_for_order(
    *,
    reference: str,
    lines: Sequence[RefundLine],
    reason: str = "",
    requested_by: str = "",
    idempotency_key: str | None = None,
    guard: Callable[[], None] | None = None,
) -> list[Refund]:
    """Refund everything still refundable on each of the order's lines (tax included in line
    totals, so tax is reversed in proportion). All lines are reserved in one transaction
    (all or nothing), then each is refunded at the gateway outside it."""
    key = idempotency_key or f"ref_{uuid.uuid4().hex}"
    if not lines:
        raise RefundRefused("no lines to refund")
    existing = list(Refund.objects.filter(idempotency_key__startswith=f"{key}:").order_by("pk"))
    if not existing:
        try:
            with transaction.atomic():
                if guard is not None:  # as in refund_create
                    guard()
                for line in sorted(lines, key=lambda ln: ln.line_key):  # one lock order
                    try:
                        with transaction.atomic():
                            existing.append(
                                _refund_reserve(
                                    reference=reference,
                                    line_key=line.line_key,
                                    amount=None,
                                    reason=reason,
                                    requested_by=requested_by,
                                    key=f"{key}:{line.line_key}",
                                    line_tax=line.tax,
                                )
                            )
                    except RefundRefused:
                        continue  # nothing left on this line: refund the others
                if not existing:
                    raise RefundRefused(f"nothing is left to refund on {reference}")
        except IntegrityError:
            existing = list(
                Refund.objects.filter(idempotency_key__startswith=f"{key}:").order_by("pk")
            )
    return [refund_execute(refund_id=r.pk) for r in existing]


def _refund_reserve(
    *,
    reference: str,
    line_key: str,
    amount: Money | None,
    reason: str,
    requested_by: str,
    key: str,
    line_tax: LineTax | None,
) -> Refund:
    """Inside a transaction: lock the line's charge rows, check what is left, write the row."""
    charges = list(
        LedgerEntry.objects.select_for_update()
        .filter(reference=reference, line_key=line_key, kind=LedgerKind.CHARGE)
        .order_by("pk")
    )
    if not charges:
        raise RefundRefused(f"nothing was charged for {line_key}")
    charged = sum(c.amount for c in charges)
    reserved = (
        Refund.objects.filter(reference=reference, line_key=line_key)
        .exclude(status=RefundStatus.FAILED)
        .aggregate(total=Sum("amount"))["total"]
        or 0
    )
    # A chargeback already took that money back: it cannot be refunded as well (unless a won
    # dispute reinstated it).
    disputed = (
        ledger_line_totals(reference=reference).get(line_key, {}).get(LedgerKind.CHARGEBACK, 0)
    )
    available = max(charged - reserved - disputed, 0)
    currency = charges[0].currency
    if amount is not None and amount.currency != currency:
        raise RefundRefused(f"refund currency {amount.currency} differs from {currency}")
    wanted = amount.amount if amount is not None else available
    if wanted <= 0:
        if amount is not None:
            raise RefundRefused("a refund must be a positive amount")
        raise RefundRefused(f"{line_key} has nothing left to refund")
    if wanted > available:
        raise RefundRefused(
            f"refund of {Money(wanted, currency)} exceeds the {Money(available, currency)} "
            f"left to refund on {line_key}"
        )
    tax = _tax_part(reserved + wanted, line_tax) - _tax_part(reserved, line_tax)
    return Refund.objects.create(
        idempotency_key=key,
        reference=reference,
        line_key=line_key,
        payment_ref=charges[0].gateway_ref,
        amount=wanted,
        tax_amount=max(tax, 0),
        currency=currency,
        reason=reason[:200],
        requested_by=requested_by[:150],
    )


def refund_execute(*, refund_id: int, allow_resend: bool = False) -> Refund:
    """Send a reserved refund to the gateway once (claimed CREATED → IN_FLIGHT), then record.

    `allow_resend` (reconciliation only, after it found no such refund at the gateway)
    sends an IN_FLIGHT refund again with the same idempotency key."""
    allowed = [RefundStatus.CREATED] + ([RefundStatus.IN_FLIGHT] if allow_resend else [])
    claimed = Refund.objects.filter(pk=refund_id, status__in=allowed).update(
        status=RefundStatus.IN_FLIGHT
    )
    refund = Refund.objects.get(pk=refund_id)
    if not claimed:
        return refund
    try:
        result = get_gateway(paid_by=refund.payment_ref).refund_create(
            payment_ref=refund.payment_ref,
            amount=Money(refund.amount, refund.currency),
            idempotency_key=refund.idempotency_key,
            metadata={
                "refund": refund.idempotency_key,
                "reference": refund.reference,
                "line": refund.line_key,
                "tenant": connection.schema_name,
            },
        )
    except GatewayUnavailable:
        return refund  # stays IN_FLIGHT: reconciliation re-reads it
    except GatewayRejected as exc:
        Refund.objects.filter(pk=refund_id, status=RefundStatus.IN_FLIGHT).update(
            status=RefundStatus.FAILED,
            reason=f"gateway refused: {exc}"[:200],
            finished_at=timezone.now(),
        )
        return Refund.objects.get(pk=refund_id)
    return refund_record(
        refund_id=refund_id, gateway_ref=result.refund_ref, succeeded=result.status != "failed"
    )


def refund_record(*, refund_id: int, gateway_ref: str, succeeded: bool) -> Refund:
    """Record a refund's outcome under a fresh lock; a repeat is a no-op."""
    with transaction.atomic():
        refund = Refund.objects.select_for_update().get(pk=refund_id)
        if refund.status in (RefundStatus.SUCCEEDED, RefundStatus.FAILED):
            return refund
        refund.status = RefundStatus.SUCCEEDED if succeeded else RefundStatus.FAILED
        refund.gateway_ref = gateway_ref
        refund.finished_at = timezone.now()
        refund.save()
        if succeeded:
            _ledger_add(
                kind=LedgerKind.REFUND,
                gateway_ref=gateway_ref,
                reference=refund.reference,
                line_key=refund.line_key,
                amount=refund.amount,
                currency=refund.currency,
            )
    return refund


def _ledger_add(**fields) -> tuple[LedgerEntry, bool]:
    entry, created = LedgerEntry.objects.get_or_create(
        kind=fields["kind"],
        gateway_ref=fields["gateway_ref"],
        line_key=fields["line_key"],
        defaults=fields,
    )
    if created:
        for handler in _ledger_handlers:
            handler(entry)
    return entry, created
