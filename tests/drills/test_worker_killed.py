"""Drill: the worker process running a task is SIGKILLed mid-task. Nothing is lost (the task
runs again) and nothing is duplicated (one charge, one line, one event)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from analytics.models import Event
from config.celery_app import app
from payments.models import AttemptStatus, ChargeAttempt
from payments.services import attempt_refresh
from storefront.models import OrderLine, OrderStatus
from tests.conftest import test_database_url
from tests.drills.conftest import accept, catalog, offer_token, pay, start
from tests.worker_support import blocked_by, wait_for, worker_start, worker_stop

pytestmark = pytest.mark.worker


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


@pytest.fixture
def prefork_worker(live_tenant, stub, redis_url, tmp_path):
    """A real prefork worker (one child, as in production but smaller) on the stub gateway."""
    proc = worker_start(
        env={
            "DATABASE_URL": test_database_url(),
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": app.conf.broker_url,
            "STRIPE_API_BASE": stub.base,
            "STRIPE_SECRET_KEY": "sk_test_drill",
        },
        log_path=tmp_path / "worker.log",
        name="drill",
        pool="prefork",
        concurrency=1,
    )
    was_eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        yield proc
    finally:
        app.conf.task_always_eager = was_eager
        worker_stop(proc)


def test_a_worker_killed_while_releasing_a_queued_upsell_loses_nothing_and_charges_once(
    prefork_worker, stub, live_tenant, client_for
):
    log = prefork_worker.log_path
    _, bump, _, _ = catalog()
    client = client_for("t1.localhost")
    _, order = start(client, bump, 1)
    stub.charge_delay = 2.0  # the primary's answer is lost: it stays in flight
    assert pay(client, order).status_code == 202
    stub.charge_delay = 0.0
    status, token = offer_token(client, order)
    assert status == 200 and token
    assert accept(client, order, token).status_code == 303
    queued = ChargeAttempt.objects.get(purpose=f"order:{order.pk}:upsell")
    assert queued.status == AttemptStatus.CREATED  # behind the settlement gate

    # Hold the queued attempt's row so the worker's release task stops mid-task, inside its
    # claim, before any charge; then kill the process running it.
    holder = psycopg.connect(test_database_url(), autocommit=False)
    # pg_stat_activity is a snapshot per transaction: watch it from a connection of its own.
    watcher = psycopg.connect(test_database_url(), autocommit=True)
    try:
        holder.execute(
            f'SELECT 1 FROM "{connection.schema_name}".payments_chargeattempt '
            "WHERE id = %s FOR UPDATE",
            [queued.pk],
        )
        primary = ChargeAttempt.objects.get(purpose=f"order:{order.pk}:primary")
        assert attempt_refresh(attempt_id=primary.pk).status == AttemptStatus.SUCCEEDED
        # The settlement enqueued release_gated_offers; the worker blocks on our lock.
        wait_for(
            lambda: blocked_by(watcher, holder, "UPDATE %payments_chargeattempt%") == 1,
            "the worker to be inside the release task",
            log,
        )
        (child,) = _children(prefork_worker.pid)
        os.kill(child, signal.SIGKILL)
        wait_for(lambda: child not in _children(prefork_worker.pid), "the child to die", log)
        holder.rollback()
    finally:
        holder.close()
        watcher.close()

    def charged():
        queued.refresh_from_db()
        return queued.status == AttemptStatus.SUCCEEDED

    deadline = time.monotonic() + 15
    while not charged() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # a duplicate run would show up now
    order.refresh_from_db()
    intents = [
        i
        for i in stub.state.intents.values()
        if i["metadata"].get("attempt") == queued.idempotency_key
    ]
    lost = int(queued.status != AttemptStatus.SUCCEEDED) + int(order.status != OrderStatus.PAID)
    duplicated = (
        max(len(intents) - 1, 0)
        + stub.stats()["attempt_keys_charged_twice"]
        + max(OrderLine.objects.filter(order=order, kind="upsell").count() - 1, 0)
        + max(Event.objects.filter(order_id=order.pk, name="upsell_charged").count() - 1, 0)
    )
    print(
        f"worker drill: SIGKILLed the pool child inside release_gated_offers; 1 task, "
        f"{len(intents)} charge(s) for it; lost {lost}, duplicated {duplicated}"
    )
    assert (lost, duplicated) == (0, 0), log.read_text(errors="replace")[-3000:]
    assert len(intents) == 1
    assert OrderLine.objects.filter(order=order, kind="upsell").count() == 1
    assert "WorkerLostError" in log.read_text(errors="replace")
