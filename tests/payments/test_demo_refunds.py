"""The seeded demo's payments (payments.demo): a refund of an attempt the seeder marked is
recorded without a gateway call; any other payment's refund goes to the gateway, whatever its
reference looks like, and nothing but the seeder's call marks an attempt."""

from __future__ import annotations

import pytest

from core.money import Money
from payments import gateway as gateway_module
from payments.demo import DemoHistoryGateway, demo_attempts_mark, demo_gateway_for
from payments.gateway import RefundResult, get_gateway
from payments.models import ChargeAttempt, LedgerEntry, Refund
from payments.services import refund_create


class _Recording:
    def __init__(self):
        self.refunds: list[str] = []

    def refund_create(self, *, payment_ref, amount, idempotency_key, metadata=None):
        self.refunds.append(payment_ref)
        return RefundResult(
            refund_ref=f"re_real_{len(self.refunds)}", status="succeeded", amount=amount
        )


@pytest.fixture
def recording(tenant):
    fake = _Recording()
    gateway_module.use_gateway(fake)
    yield fake
    gateway_module.use_gateway(None)


def _paid(ref: str, n: int, *, demo: bool) -> ChargeAttempt:
    attempt = ChargeAttempt.objects.create(
        purpose=f"order:{900 + n}:primary",
        idempotency_key=f"key-{n}",
        reference=f"order:{900 + n}",
        amount=1000,
        currency="USD",
        customer_ref="cus_1",
        payment_method_ref="pm_1",
        status="succeeded",
        gateway_ref=ref,
    )
    LedgerEntry.objects.create(
        kind="charge",
        gateway_ref=ref,
        reference=attempt.reference,
        line_key=f"line:{n}",
        amount=1000,
        currency="USD",
        attempt=attempt,
    )
    if demo:
        assert demo_attempts_mark(gateway_refs=[ref]) == 1
    return attempt


def test_a_marked_demo_payment_is_refunded_without_calling_the_gateway(recording):
    attempt = _paid("pi_demo17000001", 1, demo=True)
    refund = refund_create(
        reference=attempt.reference, line_key="line:1", amount=Money(300, "USD"), reason="demo"
    )
    assert refund.status == "succeeded" and refund.gateway_ref.startswith("re_demo_")
    assert recording.refunds == []
    assert LedgerEntry.objects.filter(kind="refund", gateway_ref=refund.gateway_ref).exists()
    # The same key again is the same answer (as the gateway's idempotency keys are).
    again = DemoHistoryGateway().refund_create(
        payment_ref=attempt.gateway_ref,
        amount=Money(300, "USD"),
        idempotency_key=refund.idempotency_key,
    )
    assert again.refund_ref == refund.gateway_ref


def test_an_unmarked_payment_goes_to_the_gateway_even_with_a_demo_looking_reference(recording):
    attempt = _paid("pi_demo17000002", 2, demo=False)
    refund = refund_create(reference=attempt.reference, line_key="line:2", amount=None)
    assert refund.status == "succeeded" and refund.gateway_ref == "re_real_1"
    assert recording.refunds == ["pi_demo17000002"]
    assert demo_gateway_for("pi_demo17000002") is None
    assert get_gateway(paid_by="pi_demo17000002") is recording


def test_only_the_seeders_call_marks_and_the_mark_is_not_a_form_field(tenant):
    attempt = _paid("pi_x", 3, demo=False)
    assert ChargeAttempt._meta.get_field("demo").editable is False
    assert demo_attempts_mark(gateway_refs=[]) == 0
    assert demo_attempts_mark(gateway_refs=["pi_other"]) == 0
    attempt.refresh_from_db()
    assert attempt.demo is False and not Refund.objects.exists()
