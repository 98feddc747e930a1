"""Every periodic loop over records moves past a record that fails, records why and how often,
alerts, and quarantines it after LOOP_QUARANTINE_AFTER runs, where the creator sees it."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest
from django.db import IntegrityError, connection
from django.utils import timezone
from django_tenants.utils import schema_context

from core.models import LoopFailure, OutboxMessage
from tests.loops_support import needs_attention_page, owner_client

H = dt.timedelta(hours=1)


@pytest.fixture
def quarantine_after_3(settings):
    settings.LOOP_QUARANTINE_AFTER = 3
    return 3


def _needs_attention(store) -> str:
    """The "Needs attention" list as `store`'s owner sees it in their admin."""
    return needs_attention_page(store)


# --- the helper ------------------------------------------------------------------------------


def test_a_failing_record_is_skipped_counted_and_quarantined_on_the_nth_run(
    tenant, quarantine_after_3, caplog
):
    from core.loops import each_record

    done = []

    def work(n):
        if n == 2:
            raise ValueError("record two is broken")
        done.append(n)
        return n

    for run_no in range(1, 4):
        with caplog.at_level(logging.ERROR, logger="core.loops"):
            run = each_record("test.loop", [1, 2, 3], work)
        assert run.results == [1, 3] and len(run.failed) == 1
        row = LoopFailure.objects.get(loop="test.loop", record_id="2")
        assert row.tries == run_no and "record two is broken" in row.last_error
        assert row.schema_name == "t1"
        assert (row.quarantined_at is not None) == (run_no == 3)
    assert "loop record failed: loop=test.loop schema=t1 record=2" in caplog.text
    assert caplog.text.count("loop record quarantined: loop=test.loop") == 1

    run = each_record("test.loop", [1, 2, 3], work)
    assert run.skipped == 1 and run.results == [1, 3] and not run.failed
    assert done.count(1) == 4 and 2 not in done


def test_a_record_that_succeeds_after_failing_starts_its_count_again(tenant, quarantine_after_3):
    from core.loops import each_record

    broken = {"yes": True}

    def work(n):
        if broken["yes"]:
            raise RuntimeError("flaky")

    each_record("test.flaky", [7], work)
    each_record("test.flaky", [7], work)
    assert LoopFailure.objects.get(loop="test.flaky").tries == 2
    broken["yes"] = False
    each_record("test.flaky", [7], work)
    assert not LoopFailure.objects.filter(loop="test.flaky").exists()


def test_a_database_error_in_one_record_does_not_break_the_callers_transaction(tenant):
    from core.loops import each_record
    from storefront.models import Customer

    Customer.objects.create(email="taken@example.com")

    def work(email):
        Customer.objects.create(email=email)

    run = each_record("test.db", ["taken@example.com", "new@example.com"], work)
    assert len(run.failed) == 1 and IntegrityError.__name__ in run.failed[0]
    assert Customer.objects.filter(email="new@example.com").exists()


def test_an_outage_named_in_stop_on_ends_the_loop_and_counts_against_no_record(tenant):
    from core.loops import each_record

    class Down(Exception):
        pass

    seen = []

    def work(n):
        seen.append(n)
        raise Down("broker unreachable")

    with pytest.raises(Down):
        each_record("test.down", [1, 2], work, stop_on=(Down,))
    assert seen == [1] and not LoopFailure.objects.filter(loop="test.down").exists()


def test_readyz_counts_failing_and_quarantined_records(tenant, client_for, quarantine_after_3):
    from core.loops import each_record

    def work(n):
        raise ValueError("no")

    for _ in range(3):
        each_record("test.ready", [1], work)
    each_record("test.ready", [2], work)
    body = json.loads(client_for("localhost").get("/readyz").content)
    assert body["loops"]["by_loop"]["test.ready"] == {"failing": 1, "quarantined": 1}
    assert body["loops"]["quarantined"] >= 1


# --- the outbox --------------------------------------------------------------------------------


@pytest.fixture
def broker(monkeypatch):
    """app.send_task as Celery does it (a mapping of keyword arguments), recording what it sent."""
    from core import tasks

    sent = []

    def send_task(name, args=None, kwargs=None, **options):
        if kwargs is not None and not isinstance(kwargs, dict):
            raise TypeError("task keyword arguments must be a mapping")
        sent.append((name, kwargs, options["headers"]["_schema_name"]))

    monkeypatch.setattr(tasks.app, "send_task", send_task)
    return sent


def test_a_poisoned_outbox_sends_the_rest_and_quarantines_the_poison_for_its_store(
    tenant, other_tenant, broker, quarantine_after_3
):
    from core.tasks import drain_outbox

    now = timezone.now()
    with schema_context("public"):
        poison_name = OutboxMessage.objects.create(
            schema_name="t1", task_name="payments.no_such_task", kwargs={}, available_at=now
        )
        poison_args = OutboxMessage.objects.create(
            schema_name="t1", task_name="payments.reconcile", kwargs=[1, 2], available_at=now
        )
        good = [
            OutboxMessage.objects.create(
                schema_name=schema, task_name="payments.reconcile", kwargs={}, available_at=now
            )
            for schema in ("t1", "t2", "t1")
        ]
    mine = {m.pk for m in good}
    drain_outbox()
    assert {(n, s) for n, _, s in broker} >= {
        ("payments.reconcile", "t1"),
        ("payments.reconcile", "t2"),
    }
    assert not OutboxMessage.objects.filter(pk__in=mine, dispatched_at__isnull=True).exists()
    assert "payments.no_such_task" not in [n for n, _, _ in broker]

    drain_outbox()
    drain_outbox()
    with schema_context("public"):
        rows = {r.record_id: r for r in LoopFailure.objects.filter(loop="core.outbox")}
    for poison in (poison_name, poison_args):
        row = rows[str(poison.pk)]
        assert row.tries == 3 and row.quarantined_at is not None and row.schema_name == "t1"
        poison.refresh_from_db()
        assert poison.dispatched_at is None and poison.send_attempts == 3
    assert "no background task named" in rows[str(poison_name.pk)].last_error
    assert "not keyword arguments" in rows[str(poison_args.pk)].last_error

    drain_outbox()  # quarantined: not tried again
    poison_name.refresh_from_db()
    assert poison_name.send_attempts == 3
    html = _needs_attention(tenant)
    assert "background task payments.no_such_task" in html
    assert "payments.no_such_task" not in _needs_attention(other_tenant)


def test_a_broker_outage_counts_against_no_outbox_message(tenant, monkeypatch):
    from core import tasks
    from core.tasks import drain_outbox

    def down(*args, **kwargs):
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(tasks.app, "send_task", down)
    with schema_context("public"):
        message = OutboxMessage.objects.create(
            schema_name="t1", task_name="payments.reconcile", kwargs={}, available_at=timezone.now()
        )
    for _ in range(6):
        drain_outbox()
    message.refresh_from_db()
    assert message.dispatched_at is None and message.send_attempts == 6
    assert not LoopFailure.objects.filter(loop="core.outbox", record_id=str(message.pk)).exists()


# --- abandoned confirmations, guardrails, the settlement gate, partner webhooks ------------------


def _decision(order, offer, *, status="requires_action", tag="a"):
    from offers.models import OfferDecision
    from payments.models import ChargeAttempt

    attempt = ChargeAttempt.objects.create(
        purpose=f"order:{order.pk}:upsell",
        idempotency_key=f"idem-{tag}",
        reference=order.reference,
        amount=800,
        currency="USD",
        customer_ref="cus",
        payment_method_ref="pm",
        status=status,
        sent_at=timezone.now() - 2 * H,
    )
    return OfferDecision.objects.create(
        order=order,
        customer=order.customer,
        offer=offer,
        kind="upsell",
        nonce=f"nonce-{tag}",
        status="accepted",
        expires_at=timezone.now() + H,
        net_amount=800,
        tax_amount=0,
        total_amount=800,
        currency="USD",
        tax_rate=0,
        tax_inclusive=False,
        attempt=attempt,
        decided_at=timezone.now() - 2 * H,
    )


def test_one_abandoned_confirmation_that_fails_to_flag_does_not_stop_the_sweep(
    tenant, monkeypatch, quarantine_after_3
):
    from storefront.services import upsell
    from tests.followups.helpers import catalog, paid_order

    core, offer, _ = catalog()
    first = _decision(paid_order("one@example.com", core, schedule=False), offer, tag="one")
    second = _decision(paid_order("two@example.com", core, schedule=False), offer, tag="two")
    real = upsell.decide._flag_for_followup

    def flag(decision, **kwargs):
        if decision.pk == first.pk:
            raise ValueError("this decision's order is broken")
        return real(decision, **kwargs)

    monkeypatch.setattr(upsell.decide, "_flag_for_followup", flag)
    assert upsell.offers_flag_abandoned() == 1
    second.refresh_from_db()
    assert second.followup_flagged_at is not None
    upsell.offers_flag_abandoned()
    upsell.offers_flag_abandoned()
    row = LoopFailure.objects.get(loop="storefront.flag_abandoned", record_id=str(first.pk))
    assert row.tries == 3 and row.quarantined_at is not None


def test_one_queued_offer_charge_that_cannot_be_cancelled_does_not_keep_the_others_queued(
    tenant, monkeypatch
):
    from payments import services as payments
    from payments.models import AttemptStatus, ChargeAttempt
    from storefront.services import upsell
    from tests.followups.helpers import catalog, paid_order

    core, _, _ = catalog()
    order = paid_order("gate@example.com", core, schedule=False)
    queued = [
        ChargeAttempt.objects.create(
            purpose=f"order:{order.pk}:{kind}",
            idempotency_key=f"gate-{kind}",
            reference=order.reference,
            amount=800,
            currency="USD",
            customer_ref="cus",
            payment_method_ref="pm",
        )
        for kind in upsell.POST_PURCHASE
    ]
    real = payments.attempt_cancel

    def cancel(*, attempt_id, reason):
        if attempt_id == queued[0].pk:
            raise RuntimeError("cannot cancel this one")
        return real(attempt_id=attempt_id, reason=reason)

    monkeypatch.setattr(payments, "attempt_cancel", cancel)
    upsell.release_gated_offers(order_id=order.pk)  # no primary: everything is cancelled
    statuses = dict(
        ChargeAttempt.objects.filter(pk__in=[a.pk for a in queued]).values_list("pk", "status")
    )
    assert statuses[queued[0].pk] == AttemptStatus.CREATED
    assert all(statuses[a.pk] == AttemptStatus.CANCELED for a in queued[1:])
    assert LoopFailure.objects.filter(
        loop="storefront.release_gated_offers", record_id=str(queued[0].pk)
    ).exists()


def test_one_offer_that_cannot_be_paused_does_not_leave_the_others_running(tenant, monkeypatch):
    from offers import guardrails
    from offers.models import Offer
    from tests.followups.helpers import catalog

    _, first, second = catalog()
    breaches = [
        guardrails.Breach(first.pk, "chargebacks", "first"),
        guardrails.Breach(second.pk, "chargebacks", "second"),
    ]
    monkeypatch.setattr(guardrails, "guardrail_breaches", lambda **kw: breaches)
    real = guardrails.offer_pause

    def pause(*, actor, offer, reason):
        if offer.pk == first.pk:
            raise RuntimeError("this offer cannot be paused")
        return real(actor=actor, offer=offer, reason=reason)

    monkeypatch.setattr(guardrails, "offer_pause", pause)
    assert guardrails.offer_guardrails_enforce() == [second.pk]
    assert Offer.objects.get(pk=second.pk).status == Offer.Status.PAUSED
    assert LoopFailure.objects.filter(loop="offers.guardrails", record_id=str(first.pk)).exists()


def test_one_webhook_subscription_that_fails_does_not_cost_the_others_their_delivery(
    tenant, monkeypatch
):
    from partners import services
    from partners.models import WebhookDelivery, WebhookSubscription

    broken = WebhookSubscription.objects.create(
        url="https://broken.example/hook", secret="s", event_types=["*"]
    )
    fine = WebhookSubscription.objects.create(
        url="https://fine.example/hook", secret="s", event_types=["*"]
    )
    real = WebhookSubscription.wants

    def wants(self, name):
        if self.pk == broken.pk:
            raise ValueError("its event list is unreadable")
        return real(self, name)

    monkeypatch.setattr(WebhookSubscription, "wants", wants)
    created = services.webhook_dispatch("refund_issued", {"id": 1}, event_id="evt_x")
    assert [d.subscription_id for d in created] == [fine.pk]
    assert WebhookDelivery.objects.filter(subscription=fine).count() == 1
    assert LoopFailure.objects.filter(
        loop="partners.webhook_dispatch", record_id=str(broken.pk)
    ).exists()


def test_the_store_admin_lists_only_its_own_records_needing_attention(tenant, other_tenant):
    now = timezone.now()
    for schema in ("t1", "t2"):
        LoopFailure.objects.create(
            schema_name=schema,
            loop="test.admin",
            record_id="1",
            label=f"record of {schema}",
            tries=5,
            last_error="why",
            first_failed_at=now,
            last_failed_at=now,
            quarantined_at=now,
        )
    html = _needs_attention(tenant)
    assert "record of t1" in html and "record of t2" not in html
    assert connection.schema_name == "t1"
    # The admin's home says so, and links to the quarantined ones.
    home = needs_attention_page(tenant, "/admin/")
    assert "1 record our background jobs gave up on" in home
    link = "/admin/core/loopfailure/?quarantined_at__isempty=0"
    assert link in home
    assert "record of t1" in needs_attention_page(tenant, link)
    LoopFailure.objects.filter(schema_name="t1").update(quarantined_at=None)
    assert "gave up on" not in needs_attention_page(tenant, "/admin/")


def test_try_again_in_the_store_admin_clears_its_own_quarantine_audited_and_no_other_stores(
    tenant, other_tenant
):
    from audit.models import AuditEntry
    from core.loops import quarantined_pks

    now = timezone.now()
    mine, theirs = (
        LoopFailure.objects.create(
            schema_name=schema,
            loop="payments.webhook_backlog",
            record_id="41",
            label=f"event of {schema}",
            tries=5,
            last_error="Not Found",
            first_failed_at=now,
            last_failed_at=now,
            quarantined_at=now,
        )
        for schema in ("t1", "t2")
    )
    assert [r["record_pk"] for r in quarantined_pks("payments.webhook_backlog")] == [41]
    client = owner_client(tenant)
    response = client.post(
        "/admin/core/loopfailure/",
        {
            "action": "try_again",
            "_selected_action": [mine.pk, theirs.pk],
        },
    )
    assert response.status_code == 302
    assert not LoopFailure.objects.filter(pk=mine.pk).exists()
    assert LoopFailure.objects.filter(pk=theirs.pk).exists()  # t2's row: not t1's to clear
    assert not quarantined_pks("payments.webhook_backlog").exists()
    entry = AuditEntry.objects.get(action="core.loopfailure.action.try_again")
    assert entry.object_id == str(mine.pk) and "owner" in entry.actor_label
