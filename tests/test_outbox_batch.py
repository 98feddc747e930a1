"""A commit's outbox messages go to the real broker together: one Redis pipeline, one client
(core/tasks.py `_send_together`, core/broker.py `Channel._create_client`)."""

from __future__ import annotations

import base64
import json

import pytest
import redis
from django.db import transaction
from django_tenants.utils import schema_context
from redis.exceptions import ConnectionError as RedisConnectionError

from config.celery_app import app
from core.models import OutboxMessage
from core.tasks import drain_outbox, enqueue, enqueue_many

TASKS = [
    ("payments.reconcile", {}),
    ("storefront.send_charge_receipt", {"attempt_id": 7}),
    ("analytics.event_record", {"name": "page_viewed", "source": "batch-probe"}),
]


class _Executed(list):
    def __init__(self):
        super().__init__()
        self.state = {"fail": False}


@pytest.fixture
def pipelines(monkeypatch):
    """Every Redis pipeline this process executes: the commands of each (LPUSH payloads
    decoded to (task, kwargs, store)). `fail` makes the next executions raise, as a broker
    that drops the connection mid-pipeline would."""
    executed = _Executed()
    state = executed.state
    real = redis.client.Pipeline.execute

    def execute(self, *args, **kwargs):
        commands = []
        for command, _options in self.command_stack:
            name, *rest = command
            if name == "LPUSH":
                body = json.loads(rest[1])
                kwargs_ = json.loads(base64.b64decode(body["body"]))[1]
                commands.append(("LPUSH", body["headers"]["task"], kwargs_, body["headers"]))
            else:
                commands.append((name,))
        executed.append(commands)
        if state["fail"]:
            self.reset()
            raise RedisConnectionError("broker went away mid-pipeline")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", execute)
    return executed


def _lpushes(executed):
    return [c for batch in executed for c in batch if c[0] == "LPUSH"]


def _unsent(ids):
    with schema_context("public"):
        return list(
            OutboxMessage.objects.filter(pk__in=ids, dispatched_at__isnull=True).order_by("pk")
        )


def test_one_commits_messages_reach_the_broker_in_one_pipeline_each_with_its_store(
    tenant, pipelines, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            messages = enqueue_many(TASKS[:2])
            messages.append(enqueue(TASKS[2][0], **TASKS[2][1]))

    assert [m.last_error for m in _unsent([m.pk for m in messages])] == []
    pushing = [batch for batch in pipelines if any(c[0] == "LPUSH" for c in batch)]
    assert len(pushing) == 1, "the commit's three messages took more than one round trip"
    pushed = _lpushes(pipelines)
    assert sorted((task, str(kwargs)) for _, task, kwargs, _ in pushed) == sorted(
        (task, str(kwargs)) for task, kwargs in TASKS
    )
    assert {headers["_schema_name"] for *_, headers in pushed} == {"t1"}
    assert [m.last_error for m in _unsent([m.pk for m in messages])] == []


def test_a_pipeline_that_fails_leaves_every_message_of_it_unsent_for_the_drainer(
    tenant, pipelines, django_capture_on_commit_callbacks
):
    pipelines.state["fail"] = True
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            messages = enqueue_many(TASKS)
    ids = [m.pk for m in messages]
    unsent = _unsent(ids)
    assert [m.pk for m in unsent] == ids
    assert all("mid-pipeline" in m.last_error and m.send_attempts == 1 for m in unsent)

    pipelines.state["fail"] = False
    pipelines.clear()
    assert drain_outbox() == 3  # one at a time, as the drainer sends
    assert _unsent(ids) == []
    with schema_context("public"):
        assert [m.send_attempts for m in OutboxMessage.objects.filter(pk__in=ids)] == [2, 2, 2]


def test_a_poison_message_in_a_commit_is_kept_and_the_others_are_sent_together(
    tenant, pipelines, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            messages = enqueue_many([TASKS[0], ("payments.no_such_task", {}), TASKS[1]])
    [poison] = _unsent([m.pk for m in messages])
    assert poison.task_name == "payments.no_such_task"
    assert "no background task named" in poison.last_error
    assert sorted(task for _, task, _, _ in _lpushes(pipelines)) == [TASKS[0][0], TASKS[1][0]]
    assert sum(1 for batch in pipelines if any(c[0] == "LPUSH" for c in batch)) == 1


def test_publishing_reuses_one_redis_client_per_channel_and_pool(monkeypatch):
    built = []
    real_init = redis.Redis.__init__

    def init(self, *args, **kwargs):
        built.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "__init__", init)
    with app.connection_for_write() as conn:
        channel = conn.default_channel  # builds the poller's client (asynchronous)
        before = len(built)
        first = channel._create_client()
        assert channel._create_client() is first
        with channel.conn_or_acquire() as client:
            assert client is first
        assert len(built) == before + 1
        old_pool = channel.pool
        channel._pool = None  # what kombu does when the connection is reset
        fresh = channel._create_client()
        assert fresh is not first and fresh.connection_pool is channel.pool is not old_pool
        assert channel._create_client(asynchronous=True) is not fresh  # the poller's own


def test_a_message_that_fails_on_its_own_is_kept_and_the_others_go_in_the_pipeline(
    tenant, pipelines, django_capture_on_commit_callbacks, monkeypatch
):
    from core import tasks

    real_send = tasks._send

    def send(message, producer=None):
        if message.task_name == TASKS[1][0]:
            raise TypeError("Object of type Decimal is not JSON serializable")
        return real_send(message, producer)

    monkeypatch.setattr(tasks, "_send", send)
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            messages = enqueue_many(TASKS)
    [kept] = _unsent([m.pk for m in messages])
    assert kept.task_name == TASKS[1][0] and "not JSON serializable" in kept.last_error
    assert sorted(task for _, task, _, _ in _lpushes(pipelines)) == sorted(
        [TASKS[0][0], TASKS[2][0]]
    )
    assert sum(1 for batch in pipelines if any(c[0] == "LPUSH" for c in batch)) == 1


def test_with_the_broker_unreachable_every_message_of_the_commit_stays_unsent(
    tenant, django_capture_on_commit_callbacks
):
    from tests.worker_support import broker_unreachable

    with broker_unreachable(), django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            messages = enqueue_many(TASKS)
    unsent = _unsent([m.pk for m in messages])
    assert len(unsent) == 3 and all(m.last_error for m in unsent)
