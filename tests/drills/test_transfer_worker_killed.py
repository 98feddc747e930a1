"""Drill: the real Celery worker sending a creator's transfer is SIGKILLed after the local
Stripe server made the transfer and handed back its answer, while the worker waits to record
it. A fresh worker and beat's transfer reconciliation leave exactly one transfer, recorded."""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from config.celery_app import app
from payments.fees import store_fee
from payments.models import AttemptStatus, TransferAttempt, TransferStatus
from tenants.models import Creator
from tests.conftest import test_database_url
from tests.followups.conftest import smtp  # noqa: F401 - the workers' SMTP server
from tests.payments import helpers as h
from tests.worker_support import blocked_by
from tests.workers.support import HoldingProxy, start_worker, stop, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.gateway]


class AnswerHoldingProxy(HoldingProxy):
    """Like HoldingProxy, but the held request reaches the local Stripe server: only its
    answer is kept back (`held` is set once the answer has arrived) until `release()`."""

    def _serve(self, client) -> None:
        upstream = socket.create_connection(self.target)
        answer_held = threading.Event()

        def back() -> None:
            try:
                while data := upstream.recv(65536):
                    if answer_held.is_set():
                        answer_held.clear()
                        self.held.set()
                        self._release.wait(60)
                    client.sendall(data)
            except OSError:
                pass
            finally:
                for s in (upstream, client):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=back, daemon=True).start()
        try:
            while data := client.recv(65536):
                if self._marker is not None and self._marker in data:
                    self._marker = None
                    answer_held.set()
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            client.close()
            upstream.close()


@pytest.fixture
def proxy(stripe_api_base):
    proxy = AnswerHoldingProxy(stripe_api_base)
    yield proxy
    proxy.close()


@pytest.fixture
def workers(live_tenant, redis_url, tmp_path, proxy, smtp):  # noqa: F811
    """Real workers whose gateway calls go through `proxy`; all stopped afterwards. The
    store's routing to its connected account (a public-schema column) is undone too."""
    started = []

    def start(**options):
        proc = start_worker(
            log_path=tmp_path / f"worker-{len(started)}.log",
            redis_url=redis_url,
            stripe_api_base=proxy.url,
            smtp_port=smtp.port,
            **options,
        )
        started.append(proc)
        return proc

    was_eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        yield start
    finally:
        app.conf.task_always_eager = was_eager
        for proc in started:
            stop(proc)
        Creator.objects.filter(slug="t1").update(
            payout_account_ref="", fee_bps=None, fee_fixed=None
        )


def _log(worker) -> str:
    return worker.log_path.read_text(errors="replace")


def test_a_worker_sigkilled_between_the_transfer_call_and_recording_it_leaves_one_transfer(
    workers, proxy, live_tenant
):
    account = h.connected_account()
    proxy.hold_next(b"POST /v1/transfers ")
    worker = workers(visibility_timeout=3)

    # The buyer pays in this process; the settlement queues the transfer for the worker.
    _core, bump = h.catalog()
    order = h.checkout_started(Client(HTTP_HOST="t1.localhost"), bump)
    charge = h.pay(order)
    connection.set_tenant(live_tenant)
    assert charge.status == AttemptStatus.SUCCEEDED
    wait_for(proxy.held.is_set, "the local server to have made the transfer", worker)
    row = TransferAttempt.objects.get(charge_attempt=charge)
    assert row.status == TransferStatus.IN_FLIGHT and row.sends == 1
    (made,) = h.sdk().v1.transfers.list(params={"transfer_group": charge.reference}).data

    # Hold the row so the worker, its answer in hand, stops inside transfer_record's lock;
    # then SIGKILL it there: the transfer exists at the gateway and is recorded nowhere.
    holder = psycopg.connect(test_database_url(), autocommit=False)
    watcher = psycopg.connect(test_database_url(), autocommit=True)
    try:
        holder.execute(
            f'SELECT 1 FROM "{connection.schema_name}".payments_transferattempt '
            "WHERE id = %s FOR UPDATE",
            [row.pk],
        )
        proxy.release()
        wait_for(
            lambda: blocked_by(watcher, holder, "SELECT %payments_transferattempt%") == 1,
            "the worker to wait to record the transfer",
            worker,
        )
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
        holder.rollback()
    finally:
        holder.close()
        watcher.close()
    row.refresh_from_db()
    assert row.status == TransferStatus.IN_FLIGHT and row.gateway_ref == ""

    # A fresh worker gets the unacknowledged task again: it finds the row in flight and sends
    # nothing (a call may still be under way). Beat's reconciliation then settles the row.
    restarted = workers(visibility_timeout=3, purge=False)
    wait_for(
        lambda: re.search(r"payments\.transfer_for_charge\[[^\]]+\] succeeded in", _log(restarted)),
        "the redelivered transfer task to finish",
        restarted,
    )
    row.refresh_from_db()
    assert row.status == TransferStatus.IN_FLIGHT and row.sends == 1
    TransferAttempt.objects.filter(pk=row.pk).update(sent_at=timezone.now() - timedelta(minutes=10))
    app.send_task("payments.transfers_reconcile", kwargs={}, headers={"_schema_name": "t1"})
    wait_for(
        lambda: TransferAttempt.objects.get(pk=row.pk).status == TransferStatus.SUCCEEDED,
        "the reconciliation to record the transfer",
        restarted,
    )
    time.sleep(1.0)  # a second transfer would show up now

    transfers = h.sdk().v1.transfers.list(params={"transfer_group": charge.reference}).data
    row.refresh_from_db()
    fee = store_fee(live_tenant).of(charge.amount)
    assert [t.id for t in transfers] == [made.id]
    assert row.status == TransferStatus.SUCCEEDED and row.gateway_ref == made.id
    assert row.sends == 1  # found at the gateway by its group: not sent again
    assert made.amount == row.amount == charge.amount - fee and made.destination == account
    balance = h.sdk().v1.balance.retrieve(options={"stripe_account": account})
    assert sum(item.amount for item in balance.available) == charge.amount - fee
    print(
        f"transfer kill drill: SIGKILLed the worker holding the transfer's answer; "
        f"{len(transfers)} transfer at the gateway, recorded by reconciliation"
    )
