"""Follow-ups through a real Celery worker on real Redis, sending to a real local SMTP server."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context, tenant_context

from analytics.models import Event
from config.celery_app import app
from storefront.models import FollowUpSend, FollowUpStatus
from tenants.models import Creator
from tests.conftest import test_database_url, truncate_tenant_tables
from tests.followups.helpers import catalog, paid_order
from tests.followups.smtp import text_of
from tests.worker_support import wait_for as _wait_for
from tests.worker_support import worker_start, worker_stop

# These commit (live_tenant): the worker must see the rows.
pytestmark = [pytest.mark.worker, pytest.mark.slow]


def _start_worker(*, smtp_port: int, redis_url: str, log_path):
    return worker_start(
        env={
            "DATABASE_URL": test_database_url(),
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": app.conf.broker_url,
            "WORKER_SMTP_PORT": str(smtp_port),
            "DJANGO_SETTINGS_MODULE": "tests.worker_settings",
        },
        log_path=log_path,
        name="followups",
    )


_stop = worker_stop


@pytest.fixture
def workers(live_tenant, redis_url, tmp_path, smtp):
    """Start real workers (as many as a test needs); all are stopped afterwards."""
    started = []

    def start():
        proc = _start_worker(
            smtp_port=smtp.port,
            redis_url=redis_url,
            log_path=tmp_path / f"worker-{len(started)}.log",
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        _stop(proc)


def _send_due(schema: str) -> None:
    app.send_task("storefront.followups_send_due", kwargs={}, headers={"_schema_name": schema})


def _due_order(email: str):
    core, _, _ = catalog()
    return paid_order(email, core, paid_at=timezone.now() - dt.timedelta(hours=25))


def test_a_worker_sends_a_tenants_followups_in_that_tenants_schema_only(workers, smtp, live_tenant):
    t2 = Creator.objects.get(schema_name="t2")
    try:
        _due_order("one@example.com")
        with tenant_context(t2):
            _due_order("two@example.com")
        worker = workers()

        _send_due("t1")
        _wait_for(lambda: len(smtp.messages) == 1, "t1's email", worker)
        time.sleep(1.0)  # t2's, if the task leaked there, would arrive now
        (mail,) = smtp.messages
        assert mail["To"] == "one@example.com"
        assert str(mail["X-Followup-Id"]).startswith("t1:")
        assert "http://t1.localhost/" in text_of(mail)
        with tenant_context(t2):
            assert FollowUpSend.objects.get(step=1).status == FollowUpStatus.SCHEDULED

        _send_due("t2")
        _wait_for(lambda: len(smtp.messages) == 2, "t2's email", worker)
        assert smtp.messages[1]["To"] == "two@example.com"
        assert "http://t2.localhost/" in text_of(smtp.messages[1])

        def t2_recorded():  # the row is marked sent just after SMTP accepts the message
            with schema_context("t2"):
                return Event.objects.filter(name="email_sent").count() == 1

        _wait_for(t2_recorded, "t2's email_sent event", worker)

        _send_due("t1")  # a duplicated periodic run
        _send_due("t2")
        time.sleep(1.5)
        assert len(smtp.messages) == 2
        with schema_context("t1"):
            assert FollowUpSend.objects.get(step=1).claims == 1
            assert Event.objects.filter(name="email_sent").count() == 1
    finally:
        truncate_tenant_tables("t2")


def test_a_worker_killed_mid_send_and_restarted_loses_nothing_and_duplicates_nothing(
    workers, smtp, live_tenant
):
    assert connection.schema_name == "t1"
    first = _due_order("first@example.com")
    second = _due_order("second@example.com")
    smtp.hold_next()  # the first delivery hangs inside SMTP, mid-task
    worker = workers()

    _send_due("t1")
    _wait_for(smtp.held.is_set, "the worker to be inside the SMTP conversation", worker)
    claimed = FollowUpSend.objects.get(order=first, step=1)
    assert claimed.status == FollowUpStatus.SENDING and claimed.claims == 1
    worker.kill()  # SIGKILL
    worker.wait(10)
    smtp.release()
    time.sleep(0.5)
    assert smtp.messages == []
    assert FollowUpSend.objects.get(order=second, step=1).status == FollowUpStatus.SCHEDULED

    restarted = workers()
    _send_due("t1")  # the next beat tick, before the claim is stale: only the untouched row
    _wait_for(lambda: len(smtp.messages) == 1, "the second buyer's email", restarted)
    assert smtp.messages[0]["To"] == "second@example.com"
    assert FollowUpSend.objects.get(order=first, step=1).status == FollowUpStatus.SENDING

    # Time passes: the dead worker's claim is older than FOLLOWUP_CLAIM_STALE_MINUTES.
    FollowUpSend.objects.filter(pk=claimed.pk).update(
        claimed_at=timezone.now() - dt.timedelta(minutes=20)
    )
    _send_due("t1")
    _send_due("t1")  # and a second beat doing the same
    _wait_for(lambda: len(smtp.messages) == 2, "the killed send, retried", restarted)
    time.sleep(1.5)

    assert sorted(m["To"] for m in smtp.messages) == ["first@example.com", "second@example.com"]
    claimed.refresh_from_db()
    assert claimed.status == FollowUpStatus.SENT and claimed.claims == 2
    assert Event.objects.filter(name="email_sent").count() == 2
    assert not FollowUpSend.objects.filter(step=1).exclude(status=FollowUpStatus.SENT).exists()
