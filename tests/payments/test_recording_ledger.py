"""A success's ledger rows are written by the statement that records it (payments/recording.py
`charge_ledger_sql`): one row per allocated line, once, and only when that statement moved
the attempt; the checked path writes them as before."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.money import Money
from payments import services
from payments.gateway import PaymentResult, PaymentStatus, use_gateway
from payments.models import AttemptStatus, ChargeAttempt, LedgerEntry, Mismatch

ALLOCATION = {"line:7": 1000, "line:9": 450, "upsell:3": 50}


class SucceedingGateway:
    def charge(self, request):
        return PaymentResult(PaymentStatus.SUCCEEDED, payment_ref="pi_rec_1", amount=request.amount)


@pytest.fixture
def gateway():
    use_gateway(SucceedingGateway())
    yield
    use_gateway(None)


def _attempt() -> ChargeAttempt:
    attempt, _ = services.attempt_get_or_create(
        purpose=f"test:ledger:{uuid.uuid4().hex[:8]}",
        reference="test:ledger",
        amount=Money(sum(ALLOCATION.values()), "EUR"),
        customer_ref="cus_test",
        payment_method_ref="pm_test",
        off_session=True,
        allocation=ALLOCATION,
    )
    return attempt


def _rows(attempt) -> list[tuple]:
    return sorted(
        LedgerEntry.objects.filter(attempt=attempt).values_list(
            "kind", "gateway_ref", "reference", "line_key", "amount", "currency"
        )
    )


EXPECTED = sorted(
    ("charge", "pi_rec_1", "test:ledger", key, amount, "EUR") for key, amount in ALLOCATION.items()
)


def test_a_success_writes_one_ledger_row_per_line_in_the_recording_statement(tenant, gateway):
    attempt = _attempt()
    with CaptureQueriesContext(connection) as queries:
        recorded = services.attempt_execute(attempt_id=attempt.pk)
    assert recorded.status == AttemptStatus.SUCCEEDED and recorded.gateway_ref == "pi_rec_1"
    assert _rows(attempt) == EXPECTED
    sql = [q["sql"] for q in queries.captured_queries]
    assert not [s for s in sql if s.startswith('INSERT INTO "payments_ledgerentry"')]
    assert [s for s in sql if s.startswith('WITH "updated" AS (UPDATE "payments_chargeattempt"')]


def test_the_same_success_recorded_again_writes_nothing_more(tenant, gateway):
    attempt = _attempt()
    services.attempt_execute(attempt_id=attempt.pk)
    replay = PaymentResult(PaymentStatus.SUCCEEDED, payment_ref="pi_rec_1", amount=None)
    services.attempt_record_result(attempt_id=attempt.pk, result=replay)
    # Even back in flight (a resend's claim), the UPDATE's INSERT meets the rows there.
    ChargeAttempt.objects.filter(pk=attempt.pk).update(status=AttemptStatus.IN_FLIGHT)
    services.attempt_record_result(attempt_id=attempt.pk, result=replay)
    assert _rows(attempt) == EXPECTED


def test_a_decline_or_a_pending_payment_writes_no_ledger_row(tenant):
    for status in (PaymentStatus.DECLINED, PaymentStatus.PROCESSING):
        attempt = _attempt()
        ChargeAttempt.objects.filter(pk=attempt.pk).update(status=AttemptStatus.IN_FLIGHT)
        result = PaymentResult(status, payment_ref=f"pi_{status}", amount=None)
        assert services.attempt_record_result(attempt_id=attempt.pk, result=result).status in (
            AttemptStatus.DECLINED,
            AttemptStatus.PROCESSING,
        )
        assert _rows(attempt) == []


def test_a_late_success_on_the_checked_path_still_reaches_the_ledger(tenant):
    attempt = _attempt()
    ChargeAttempt.objects.filter(pk=attempt.pk).update(
        status=AttemptStatus.DECLINED, gateway_ref="pi_rec_1"
    )
    late = PaymentResult(PaymentStatus.SUCCEEDED, payment_ref="pi_rec_1", amount=None)
    assert services.attempt_record_result(attempt_id=attempt.pk, result=late).status == (
        AttemptStatus.SUCCEEDED
    )
    assert _rows(attempt) == EXPECTED


def test_a_second_payment_for_a_recorded_attempt_writes_no_ledger_row(tenant, gateway):
    attempt = _attempt()
    services.attempt_execute(attempt_id=attempt.pk)
    ChargeAttempt.objects.filter(pk=attempt.pk).update(status=AttemptStatus.IN_FLIGHT)
    other = PaymentResult(PaymentStatus.SUCCEEDED, payment_ref="pi_rec_2", amount=None)
    services.attempt_record_result(attempt_id=attempt.pk, result=other)
    assert _rows(attempt) == EXPECTED  # nothing for pi_rec_2: flagged instead
    assert Mismatch.objects.filter(gateway_ref="pi_rec_2").exists()
