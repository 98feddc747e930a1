"""Tasks through a real broker and a real Celery worker process: tenant routing and the outbox."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
from django.db import connection
from django_tenants.utils import get_public_schema_name, schema_context, tenant_context

from analytics.models import Event
from config.celery_app import app
from core.models import OutboxMessage
from core.tasks import drain_outbox, enqueue, fan_out
from tenants.models import Creator
from tests.conftest import truncate_tenant_tables
from tests.worker_support import broker_unreachable
from tests.worker_support import wait_for as _wait_for

# These tests commit (live_tenant) and must not ask for `db`: inside its rolled-back
# transaction nothing would ever be committed for the worker to see or on_commit to send.
pytestmark = pytest.mark.worker


def _events(schema: str, source: str) -> int:
    with schema_context(schema):
        return Event.objects.filter(source=source).count()


def _worker_log(worker) -> str:
    """The worker's log lines written during this test (the worker serves the module)."""
    return worker.log_path.read_bytes()[worker.log_from :].decode(errors="replace")


@pytest.fixture
def probe() -> str:
    return f"probe-{uuid.uuid4().hex[:12]}"


def test_a_task_delayed_in_t1_is_run_by_the_worker_in_t1_and_nowhere_else(
    celery_worker_process, live_tenant, probe
):
    from analytics.tasks import event_record

    assert connection.schema_name == "t1"
    event_record.delay(name="page_viewed", source=probe)

    _wait_for(lambda: _events("t1", probe) == 1, "the event in t1", celery_worker_process)
    assert _events("t2", probe) == 0
    assert "analytics.event_record" in _worker_log(celery_worker_process)
    time.sleep(0.3)  # a stray second delivery would show up now
    assert _events("t1", probe) == 1


def test_a_task_enqueued_through_the_outbox_runs_in_its_tenant_after_commit(
    celery_worker_process, live_tenant, probe
):
    with tenant_context(Creator.objects.get(schema_name="t2")):
        message = enqueue("analytics.event_record", name="page_viewed", source=probe)

    _wait_for(lambda: _events("t2", probe) == 1, "the event in t2", celery_worker_process)
    assert _events("t1", probe) == 0
    message.refresh_from_db()
    assert message.schema_name == "t2"
    assert message.dispatched_at is not None and message.send_attempts == 1
    truncate_tenant_tables("t2")


def test_a_tenant_task_sent_without_a_tenant_is_refused_by_the_worker(
    celery_worker_process, live_tenant, probe
):
    with schema_context(get_public_schema_name()):
        app.send_task("analytics.event_record", kwargs={"name": "page_viewed", "source": probe})

    _wait_for(
        lambda: "TenantRequired" in _worker_log(celery_worker_process),
        "the worker to refuse the task",
        celery_worker_process,
    )
    assert _events("t1", probe) == 0 and _events("t2", probe) == 0


def test_with_the_broker_down_enqueue_keeps_the_row_and_drain_outbox_sends_it_later(
    celery_worker_process, live_tenant, probe
):
    with broker_unreachable():
        message = enqueue("analytics.event_record", name="page_viewed", source=probe)
        message.refresh_from_db()
        assert message.dispatched_at is None
        assert message.send_attempts == 1 and message.last_error
        assert drain_outbox() == 0  # still down: still kept
    time.sleep(0.5)
    assert _events("t1", probe) == 0  # nothing reached the worker

    assert drain_outbox() == 1

    _wait_for(lambda: _events("t1", probe) == 1, "the drained event in t1", celery_worker_process)
    message.refresh_from_db()
    assert message.dispatched_at is not None and message.send_attempts == 3
    assert drain_outbox() == 0  # sent once, not again


def test_a_delayed_outbox_message_waits_for_its_time(live_tenant, probe):
    message = enqueue(
        "analytics.event_record",
        delay=dt.timedelta(hours=1),
        name="page_viewed",
        source=probe,
    )

    assert drain_outbox() == 0
    message.refresh_from_db()
    assert message.dispatched_at is None and message.send_attempts == 0


def test_fan_out_sends_one_task_per_tenant(celery_worker_process, live_tenant, probe):
    schemas = set(
        Creator.objects.exclude(schema_name=get_public_schema_name()).values_list(
            "schema_name", flat=True
        )
    )
    assert {"t1", "t2"} <= schemas
    try:
        with schema_context(get_public_schema_name()):
            sent = fan_out("analytics.event_record", name="page_viewed", source=probe)

        assert sent == len(schemas)
        for schema in sorted(schemas):
            _wait_for(
                lambda s=schema: _events(s, probe) == 1,
                f"the event in {schema}",
                celery_worker_process,
            )
        time.sleep(0.3)
        assert {s: _events(s, probe) for s in schemas} == {s: 1 for s in schemas}
        with schema_context(get_public_schema_name()):
            assert not OutboxMessage.objects.filter(task_name="analytics.event_record").exists()
    finally:
        for schema in schemas - {"t1"}:  # live_tenant empties t1
            truncate_tenant_tables(schema)
