"""The seeded demo's payments (storefront.demo_history) have no gateway object: they were
charged through the in-process gateway while seeding. The seeder alone marks their attempts
(`ChargeAttempt.demo`); a refund of one, and the take-back of its transfer, is answered here
instead of at the gateway, so a creator exploring the demo can refund a seeded order from the
admin and see it in the figures, through the same refund service as any other.

A real payment is never answered here: checkout, offers and renewals create attempts with
`demo` false, nothing but `demo_attempts_mark` sets it, and it only marks the references the
seeder's own in-process gateway handed out."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from django.db.models import Q

from core.money import Money
from payments.gateway import RefundResult, ReversalResult
from payments.models import (
    ChargeAttempt,
    Refund,
    RefundStatus,
    ReversalStatus,
    TransferReversal,
)

DEMO_MARK = "demo_"  # in every reference answered here: re_demo_…, trr_demo_…


def demo_attempts_mark(*, gateway_refs: Iterable[str]) -> int:
    """Mark the attempts paid with these in-process references as demo data (the seeder's
    call, for the payments its own gateway made); returns how many it marked."""
    refs = [ref for ref in gateway_refs if ref]
    if not refs:
        return 0
    return ChargeAttempt.objects.filter(gateway_ref__in=refs, demo=False).update(demo=True)


def demo_gateway_for(ref: str) -> DemoHistoryGateway | None:
    """The demo's own answers when `ref` is a marked attempt's payment or its transfer."""
    if not ref:
        return None
    marked = ChargeAttempt.objects.filter(demo=True).filter(
        Q(gateway_ref=ref) | Q(transfer__gateway_ref=ref)
    )
    return DemoHistoryGateway() if marked.exists() else None


def _ref(kind: str, key: str) -> str:
    return f"{kind}_{DEMO_MARK}{hashlib.sha256(key.encode()).hexdigest()[:24]}"


class DemoHistoryGateway:
    """The calls a refund of the seeded history makes, answered from our own records (the
    idempotency key gives the same reference on every retry)."""

    def refund_create(
        self,
        *,
        payment_ref: str,
        amount: Money,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> RefundResult:
        return RefundResult(
            refund_ref=_ref("re", idempotency_key),
            status="succeeded",
            amount=amount,
            payment_ref=payment_ref,
            metadata=dict(metadata or {}),
        )

    def refunds_list(self, *, payment_ref: str) -> list[RefundResult]:
        rows = Refund.objects.filter(payment_ref=payment_ref, status=RefundStatus.SUCCEEDED)
        return [
            RefundResult(
                refund_ref=r.gateway_ref,
                status="succeeded",
                amount=Money(r.amount, r.currency),
                payment_ref=payment_ref,
                metadata={"refund": r.idempotency_key},
            )
            for r in rows
        ]

    def transfer_reversal_create(
        self, *, transfer_ref: str, amount: Money, idempotency_key: str, metadata: Mapping
    ) -> ReversalResult:
        return ReversalResult(
            reversal_ref=_ref("trr", idempotency_key),
            transfer_ref=transfer_ref,
            amount=amount,
            metadata=dict(metadata),
        )

    def transfer_reversals_list(self, *, transfer_ref: str) -> list[ReversalResult]:
        rows = TransferReversal.objects.filter(
            transfer__gateway_ref=transfer_ref, status=ReversalStatus.SUCCEEDED
        )
        return [
            ReversalResult(
                reversal_ref=r.gateway_ref,
                transfer_ref=transfer_ref,
                amount=Money(r.amount, r.currency),
                metadata={"transfer_reversal": r.idempotency_key},
            )
            for r in rows
        ]
