"""Drill: the broker (a private redis-server, never the machine's) is stopped while buyers pay,
accept upsells and the gateway's webhook arrives. Nothing is lost once it is back: every
settlement lands, the queued upsell is charged once, every paid order has its follow-ups."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from analytics.models import Event
from bench.harness import PrivateRedis
from config.celery_app import app
from core.models import OutboxMessage
from core.tasks import drain_outbox
from payments.models import AttemptStatus, ChargeAttempt
from payments.services import attempt_refresh
from storefront.models import FollowUpSend, OrderStatus
from tests.conftest import test_database_url
from tests.drills.conftest import accept, catalog, offer_token, pay, start
from tests.worker_support import blocked_by, wait_for, worker_start, worker_stop

pytestmark = [pytest.mark.worker, pytest.mark.slow]

OUTAGE_SECONDS = float(os.environ.get("DRILL_REDIS_OUTAGE_SECONDS", "3"))


def _point_celery_at(url: str) -> None:
    app.conf.broker_url = url
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def private_broker(live_tenant, stub, tmp_path):
    redis = PrivateRedis(tmp_path)
    redis.start()
    real = app.conf.broker_url
    was_eager = app.conf.task_always_eager
    _point_celery_at(redis.url)
    app.conf.task_always_eager = False
    worker = None
    try:
        worker = worker_start(
            env={
                "DATABASE_URL": test_database_url(),
                "REDIS_URL": redis.url,
                "CELERY_BROKER_URL": redis.url,
                "STRIPE_API_BASE": stub.base,
                "STRIPE_SECRET_KEY": "sk_test_drill",
            },
            log_path=tmp_path / "worker.log",
            name="redis-drill",
            purge=False,
        )
        redis.log = worker.log_path
        redis.worker = worker
        yield redis
    finally:
        if worker is not None:
            worker_stop(worker)
        redis.stop()
        app.conf.task_always_eager = was_eager
        _point_celery_at(real)


def _webhook(client, intent_id: str):
    body = json.dumps(
        {
            "id": f"evt_{intent_id}",
            "object": "event",
            "type": "payment_intent.succeeded",
            "created": int(time.time()),
            "data": {"object": {"id": intent_id, "object": "payment_intent"}},
        }
    ).encode()
    ts = int(time.time())
    sig = hmac.new(
        settings.STRIPE_WEBHOOK_SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return client.post(
        "/webhooks/stripe/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=f"t={ts},v1={sig}",
    )


def test_with_the_broker_stopped_no_settlement_upsell_or_follow_up_is_lost_once_it_returns(
    private_broker, stub, live_tenant, client_for
):
    _, bump, _, _ = catalog()
    client = client_for("t1.localhost")
    # Before the outage: A's payment answer is lost (in flight), A accepts the upsell (queued).
    _, slow = start(client, bump, 0)
    stub.charge_delay = 2.0
    assert pay(client, slow).status_code == 202
    stub.charge_delay = 0.0
    status, token = offer_token(client, slow)
    assert status == 200 and token and accept(client, slow, token).status_code == 303
    (intent,) = [i for i in stub.state.intents.values()]

    private_broker.stop()
    outage_started = time.monotonic()
    orders = [slow]
    assert _webhook(client, intent["id"]).status_code == 200  # the settlement, during it
    n = 1
    # At most 25 buyers: they all come from 127.0.0.1 (the one-click posts allow 30/min).
    while time.monotonic() - outage_started < OUTAGE_SECONDS and n <= 25:
        _, order = start(client, bump, n)
        assert pay(client, order).status_code == 200
        status, token = offer_token(client, order)
        assert status == 200 and accept(client, order, token).status_code == 303
        orders.append(order)
        n += 1
    slow.refresh_from_db()
    assert slow.status == OrderStatus.PENDING  # the webhook waits in the outbox
    waiting = OutboxMessage.objects.filter(dispatched_at__isnull=True).count()
    assert waiting >= 1 + 2 * (len(orders) - 1)  # the webhook; receipt + release per order

    outage = time.monotonic() - outage_started
    private_broker.start()  # same port: the worker reconnects by itself
    deadline = time.monotonic() + 30
    while OutboxMessage.objects.filter(dispatched_at__isnull=True).exists():
        assert time.monotonic() < deadline, "the outbox did not drain"
        drain_outbox()  # what beat does every 30 s
        time.sleep(0.5)
    upsell = ChargeAttempt.objects.get(purpose=f"order:{slow.pk}:upsell")
    while upsell.status != AttemptStatus.SUCCEEDED:
        assert time.monotonic() < deadline, (
            "the queued upsell was not charged:\n"
            + private_broker.log.read_text(errors="replace")[-3000:]
        )
        time.sleep(0.2)
        upsell.refresh_from_db()
    time.sleep(1.0)  # a duplicate would show up now

    lost = duplicated = 0
    for order in orders:
        order.refresh_from_db()
        lost += order.status != OrderStatus.PAID
        lost += FollowUpSend.objects.filter(order=order).count() != 2
        completed = Event.objects.filter(order_id=order.pk, name="checkout_completed").count()
        charged = Event.objects.filter(order_id=order.pk, name="upsell_charged").count()
        lost += (completed == 0) + (charged == 0)
        duplicated += (completed > 1) + (charged > 1)
    duplicated += stub.stats()["attempt_keys_charged_twice"]
    print(
        f"redis drill: outage {outage:.1f}s, {len(orders)} orders, "
        f"{waiting} tasks waited in the outbox; lost {lost}, duplicated {duplicated}"
    )
    assert (lost, duplicated) == (0, 0)
    assert stub.stats()["payment_intents"] == 2 * len(orders)
    # The same worker did it all: it survived the outage on its own, nothing restarted it.
    log = private_broker.log.read_text(errors="replace")
    assert private_broker.worker.poll() is None and "Unrecoverable error" not in log
    assert log.count("worker: Ready") + log.count(" ready.") == 1


@pytest.fixture
def prefork_on_private_broker(live_tenant, stub, tmp_path):
    """A prefork worker (two children, one left free so it keeps polling the broker) on a
    private redis-server, as production runs it."""
    redis = PrivateRedis(tmp_path)
    redis.start()
    real = app.conf.broker_url
    was_eager = app.conf.task_always_eager
    _point_celery_at(redis.url)
    app.conf.task_always_eager = False
    log = tmp_path / "worker.log"
    env = dict(
        os.environ,
        CELERY_TASK_ALWAYS_EAGER="false",
        DATABASE_URL=test_database_url(),
        REDIS_URL=redis.url,
        CELERY_BROKER_URL=redis.url,
        STRIPE_API_BASE=stub.base,
        STRIPE_SECRET_KEY="sk_test_drill",
    )
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config.celery_app",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                "2",
                "--loglevel",
                "INFO",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "--hostname",
                f"redis-drill-prefork-{os.getpid()}@%h",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: "ready." in log.read_text(errors="replace") or worker.poll() is not None,
            "the worker to start",
            log,
            timeout=40,
        )
        assert worker.poll() is None, log.read_text()
        redis.log = log
        redis.worker = worker
        yield redis
    finally:
        worker.terminate()
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        redis.stop()
        app.conf.task_always_eager = was_eager
        _point_celery_at(real)


def test_a_worker_holding_an_unacknowledged_task_survives_the_broker_going_away(
    prefork_on_private_broker, stub, live_tenant, client_for
):
    """kombu's restore of unacknowledged messages on a dropped connection used to kill the
    worker (docs/kombu-restore-repro.md); core/broker.py's transport keeps it alive."""
    broker = prefork_on_private_broker
    log = broker.log
    _, bump, _, _ = catalog()
    client = client_for("t1.localhost")
    _, order = start(client, bump, 1)
    stub.charge_delay = 2.0  # the primary's answer is lost: it stays in flight
    assert pay(client, order).status_code == 202
    stub.charge_delay = 0.0
    status, token = offer_token(client, order)
    assert status == 200 and token and accept(client, order, token).status_code == 303
    queued = ChargeAttempt.objects.get(purpose=f"order:{order.pk}:upsell")

    # Hold the queued attempt's row: the worker's release task (acks_late) blocks inside it,
    # so its message is delivered and unacknowledged when the broker goes away.
    holder = psycopg.connect(test_database_url(), autocommit=False)
    watcher = psycopg.connect(test_database_url(), autocommit=True)
    try:
        holder.execute(
            f'SELECT 1 FROM "{connection.schema_name}".payments_chargeattempt '
            "WHERE id = %s FOR UPDATE",
            [queued.pk],
        )
        primary = ChargeAttempt.objects.get(purpose=f"order:{order.pk}:primary")
        assert attempt_refresh(attempt_id=primary.pk).status == AttemptStatus.SUCCEEDED
        deadline = time.monotonic() + 20
        while OutboxMessage.objects.filter(dispatched_at__isnull=True).exists():
            assert time.monotonic() < deadline, "the outbox did not send the release task"
            drain_outbox()
            time.sleep(0.2)
        wait_for(
            lambda: blocked_by(watcher, holder, "UPDATE %payments_chargeattempt%") == 1,
            "the worker to be inside the release task",
            log,
        )
        broker.stop()
        wait_for(
            lambda: re.search(
                r"Restoring \d+ unacknowledged message", log.read_text(errors="replace")
            ),
            "the worker to notice the outage with the task unacknowledged",
            log,
        )
        holder.rollback()
        wait_for(
            lambda: ChargeAttempt.objects.filter(
                pk=queued.pk, status=AttemptStatus.SUCCEEDED
            ).exists(),
            "the release task to finish during the outage",
            log,
        )
    finally:
        holder.close()
        watcher.close()
    assert broker.worker.poll() is None, log.read_text(errors="replace")[-4000:]
    assert "Unrecoverable error" not in log.read_text(errors="replace")

    broker.start()  # same port: the same worker reconnects by itself
    wait_for(
        lambda: log.read_text(errors="replace").count("Connected to") >= 2,
        "the worker to reconnect",
        log,
        timeout=40,
    )
    drain_outbox.delay()  # and it takes new work
    wait_for(
        lambda: re.search(
            r"Task core\.tasks\.drain_outbox\[[^]]+\] succeeded", log.read_text(errors="replace")
        ),
        "a task sent after the outage to run",
        log,
        timeout=30,
    )
    assert broker.worker.poll() is None
    queued.refresh_from_db()
    # the release finished, once
    assert queued.status == AttemptStatus.SUCCEEDED, log.read_text(errors="replace")[-6000:]
    assert stub.stats()["attempt_keys_charged_twice"] == 0
