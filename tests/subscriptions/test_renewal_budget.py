"""What one renewal costs the database: the statements of a renewal (committing the period
and its attempt, claiming it, recording the paid outcome, sending its outbox message) are
pinned, and a paid renewal sends one outbox message (the receipt email and the
`subscription.renewed` webhook together). Savepoints are the test's transaction's, not the
renewal's: not counted."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.models import OutboxMessage
from subscriptions import services
from tests.subscriptions.helpers import at, gateway_charges, plan, start

pytestmark = pytest.mark.gateway

# 5 to commit the period and its attempt (lock, period lookup and insert, attempt, history),
# 1 to claim it, 9 to record it paid (the attempt's move with its ledger rows in one
# statement, subscription and period locked, both updated, history, notice, outbox, payout
# account), 1 to send the outbox message. It was 25 (and 6 savepoint statements more) before
# the period and the notice were written without get_or_create and the receipt and the
# webhook went in one message, and 20 before the ledger rows joined the outcome's UPDATE.
RENEWAL_BUDGET = 16


def _statements(ctx) -> list[str]:
    return [
        q["sql"]
        for q in ctx.captured_queries
        if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT"))
    ]


def test_a_paid_renewal_stays_within_its_statement_budget_and_sends_one_message(
    tenant, django_capture_on_commit_callbacks
):
    subs = [
        start(plan(price=1500), started_at=at(2027, 1, 31, 10), email=f"b{i}@example.com")
        for i in range(3)
    ]
    before = OutboxMessage.objects.count()
    counts = []
    for sub in subs:
        with CaptureQueriesContext(connection) as ctx:
            with django_capture_on_commit_callbacks(execute=True):
                assert services.renewal_charge(subscription_id=sub.pk, now=at(2027, 3, 1))
        counts.append(len(_statements(ctx)))
        assert len(gateway_charges(sub)) == 1
    assert max(counts) <= RENEWAL_BUDGET, "\n".join(_statements(ctx))
    assert OutboxMessage.objects.count() - before == len(subs)
    sent = OutboxMessage.objects.order_by("-pk")[: len(subs)]
    assert {m.task_name for m in sent} == {"subscriptions.renewed"}
    assert all(m.dispatched_at is not None for m in sent)
