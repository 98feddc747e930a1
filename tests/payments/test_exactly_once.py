"""Exactly-once charging: the claim, the refusal inside a transaction, a repeated execute.

The race test is deterministic: the test's own connection holds the attempt's row lock while
two callers run `attempt_execute`; both read the CREATED row and then wait in the claim's
UPDATE. Released, the second UPDATE finds the row IN_FLIGHT, and only its WHERE condition
(status and sends as read) stops a second charge.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from django.db import connection, transaction

from core.money import Money
from payments import services
from payments.gateway import PaymentResult, PaymentStatus, use_gateway
from payments.models import AttemptStatus, ChargeAttempt
from tests import gateway_helpers as gw
from tests.payments import helpers as h


class CountingGateway:
    """Answers every charge as succeeded and remembers each one it was sent."""

    def __init__(self):
        self.charges: list[str] = []
        self._lock = threading.Lock()

    def charge(self, request):
        with self._lock:
            self.charges.append(request.idempotency_key)
            n = len(self.charges)
        return PaymentResult(
            PaymentStatus.SUCCEEDED, payment_ref=f"pi_counted_{n}", amount=request.amount
        )


@pytest.fixture
def counting_gateway():
    gateway = CountingGateway()
    use_gateway(gateway)
    yield gateway
    use_gateway(None)


def _attempt(tag: str) -> ChargeAttempt:
    attempt, created = services.attempt_get_or_create(
        purpose=f"test:{tag}:{uuid.uuid4().hex[:8]}",
        reference=f"test:{tag}",
        amount=Money(1500, "USD"),
        customer_ref="cus_test",
        payment_method_ref="pm_test",
        off_session=True,
        allocation={"line:1": 1500},
    )
    assert created
    return attempt


def test_attempt_execute_inside_an_open_transaction_is_refused_before_the_gateway_is_called(
    tenant, counting_gateway
):
    attempt = _attempt("atomic")
    with pytest.raises(RuntimeError, match="outside a transaction"), transaction.atomic():
        services.attempt_execute(attempt_id=attempt.pk)
    assert counting_gateway.charges == []
    attempt.refresh_from_db()
    assert (attempt.status, attempt.sends) == (AttemptStatus.CREATED, 0)


@pytest.mark.gateway
def test_executing_an_attempt_twice_makes_one_payment_at_the_gateway(tenant, client_for):
    _, bump = h.catalog()
    order = h.checkout_started(client_for("t1.localhost"), bump)
    first = h.pay(order)
    assert first.status == AttemptStatus.SUCCEEDED

    again = services.attempt_execute(attempt_id=first.pk)

    assert (again.pk, again.status, again.gateway_ref) == (
        first.pk,
        AttemptStatus.SUCCEEDED,
        first.gateway_ref,
    )
    intents = [
        i for i in gw.payment_intents() if i.metadata.to_dict().get("purpose") == first.purpose
    ]
    assert [(i.id, i.status) for i in intents] == [(first.gateway_ref, "succeeded")]
    assert ChargeAttempt.objects.get(pk=first.pk).sends == 1


def _waiting_claims() -> int:
    """Backends of this database waiting for a lock in an UPDATE of the attempts table."""
    with connection.cursor() as cursor:
        # Inside a transaction PostgreSQL keeps the first snapshot of the activity: drop it.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE %s",
            ['UPDATE "payments_chargeattempt"%'],
        )
        return cursor.fetchone()[0]


def test_two_claims_that_both_read_the_created_row_charge_once(live_tenant, counting_gateway):
    attempt = _attempt("race")
    results: list[ChargeAttempt] = []
    errors: list[BaseException] = []

    def execute():
        connection.set_tenant(live_tenant)
        try:
            results.append(services.attempt_execute(attempt_id=attempt.pk))
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=execute) for _ in range(2)]
    with transaction.atomic():
        # Hold the row: each caller reads CREATED, then waits in its claim's UPDATE.
        ChargeAttempt.objects.select_for_update().get(pk=attempt.pk)
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while _waiting_claims() < 2:
            assert time.monotonic() < deadline, "the two claims never both reached the UPDATE"
            time.sleep(0.05)
    for thread in threads:
        thread.join(30)

    assert errors == [] and len(results) == 2
    assert len(counting_gateway.charges) == 1
    attempt.refresh_from_db()
    assert (attempt.status, attempt.sends) == (AttemptStatus.SUCCEEDED, 1)
