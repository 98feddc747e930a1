"""Two beat processes schedule every periodic job twice. For each beat entry, its task run
twice at once (two threads, two database connections) has the effect of one run: one email,
one charge, one reconciliation record, one dispatch, one pause."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid

import pytest
import redis
from django.core import mail
from django.db import connection
from django.utils import timezone

from analytics.models import Event
from config.celery_app import app
from core.tasks import enqueue
from offers.models import Offer, OfferDecision, OfferKind
from payments.models import AttemptStatus, ChargeAttempt, LedgerEntry, Mismatch
from storefront.models import Customer, FollowUpSend, FollowUpStatus
from tests import gateway_helpers as gw
from tests.concurrency import in_threads
from tests.factories import OfferFactory, ProductFactory
from tests.followups.helpers import catalog as followup_catalog
from tests.followups.helpers import paid_order
from tests.orders import bump_sales, make_order
from tests.payments import helpers as h
from tests.upsell.helpers import buy, make_catalog, offer_token
from tests.worker_support import broker_unreachable

pytestmark = pytest.mark.gateway
HOST = "t1.localhost"


def _twice_at_once(task_name: str, tenant) -> list:
    """The fanned-out task, run by two 'workers' at the same moment."""
    app.loader.import_default_modules()  # what a worker registers at start-up
    task = app.tasks[task_name]
    results, errors = in_threads(2, lambda: task.apply(throw=True).get(), tenant=tenant, timeout=60)
    assert errors == []
    return results


# --- one scenario per periodic task: set up a due effect, run twice, check it happened once --


def _drain_outbox(ctx):
    probe = f"probe-{uuid.uuid4().hex[:12]}"
    with broker_unreachable():
        message = enqueue("analytics.event_record", name="page_viewed", source=probe)
    message.refresh_from_db()
    assert message.dispatched_at is None

    def check(results):
        message.refresh_from_db()
        assert message.dispatched_at is not None and message.send_attempts == 2
        assert sorted(results) == [0, 1]
        client = redis.Redis.from_url(app.conf.broker_url)
        sent = []
        for raw in client.lrange("celery", 0, -1):
            envelope = json.loads(raw)
            args = json.loads(base64.b64decode(envelope["body"]))
            if args[1].get("source") == probe:
                sent.append(raw)
        for raw in sent:
            client.lrem("celery", 0, raw)
        assert len(sent) == 1  # on the broker once

    return None, check


def _reconcile(ctx):
    _, bump = h.catalog()
    order = h.checkout_started(ctx["client_for"](HOST), bump)
    h.pay_and_crash(order, ctx["monkeypatch"])
    ChargeAttempt.objects.update(sent_at=timezone.now() - dt.timedelta(minutes=10))
    attempt = ChargeAttempt.objects.get()
    orphan = h.sdk().v1.payment_intents.create(
        params={
            "amount": 2500,
            "currency": "usd",
            "customer": attempt.customer_ref,
            "payment_method": _card(attempt.customer_ref),
            "confirm": True,
            "payment_method_types": ["card"],
            "metadata": {"attempt": "att_lost", "tenant": "t1"},
        }
    )

    def check(results):
        attempt.refresh_from_db()
        assert attempt.status == AttemptStatus.SUCCEEDED and attempt.sends == 1
        assert LedgerEntry.objects.filter(reference=order.reference).count() == 2
        assert list(Mismatch.objects.values_list("kind", "gateway_ref")) == [
            ("orphan_charge", orphan.id)
        ]
        assert Event.objects.filter(order_id=order.pk, name="checkout_completed").count() == 1
        assert len(gw.payment_intents()) == 2  # the order's and the orphan: nothing re-sent

    return ctx["tenant"], check


def _transfers_reconcile(ctx):
    """A transfer lost on the way (in flight, nothing at the gateway), ten minutes ago."""
    from payments import transfers
    from payments.gateway import GatewayUnavailable, get_gateway
    from payments.models import TransferAttempt, TransferStatus
    from tenants.models import Creator

    ctx["request"].addfinalizer(
        lambda: Creator.objects.filter(slug="t1").update(payout_account_ref="")
    )
    account = h.connected_account()
    _, bump = h.catalog()
    attempt = h.pay(h.checkout_started(ctx["client_for"](HOST), bump))
    connection.set_tenant(ctx["tenant"])
    real = get_gateway()

    class LostOnTheWay:
        def __getattr__(self, name):
            return getattr(real, name)

        def transfer_create(self, **kwargs):
            raise GatewayUnavailable("connection reset before the gateway got it")

    with ctx["monkeypatch"].context() as patched:
        patched.setattr(transfers, "get_gateway", lambda **_: LostOnTheWay())
        row = transfers.transfer_for_charge(charge_attempt_id=attempt.pk)
    assert row.status == TransferStatus.IN_FLIGHT
    TransferAttempt.objects.update(sent_at=timezone.now() - dt.timedelta(minutes=10))

    def check(results):
        row.refresh_from_db()
        assert row.status == TransferStatus.SUCCEEDED and row.sends == 2  # one re-send
        made = h.sdk().v1.transfers.list(params={"destination": account}).data
        assert [t.id for t in made] == [row.gateway_ref]

    return ctx["tenant"], check


def _card(customer_ref: str) -> str:
    method = h.sdk().v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": gw.CARD_OK, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    )
    h.sdk().v1.payment_methods.attach(method.id, params={"customer": customer_ref})
    return method.id


def _followups_send_due(ctx):
    core, _, _ = followup_catalog()
    paid_order("buyer@example.com", core, paid_at=timezone.now() - dt.timedelta(hours=25))
    smtp = ctx["request"].getfixturevalue("smtp_mail")

    def check(results):
        assert sorted(results) == [0, 1]
        assert len(smtp.messages) == 1
        assert FollowUpSend.objects.get(step=1).claims == 1
        assert FollowUpSend.objects.get(step=1).status == FollowUpStatus.SENT
        assert Event.objects.filter(name="email_sent").count() == 1

    return ctx["tenant"], check


def _flag_abandoned(ctx):
    make_catalog()
    client = ctx["client_for"](HOST)
    order = buy(client, card=gw.CARD_3DS)
    client.post(f"/o/{order.token}/offer/accept", {"token": offer_token(client, order)})
    ChargeAttempt.objects.filter(purpose=f"order:{order.pk}:upsell").update(
        sent_at=timezone.now() - dt.timedelta(minutes=31)
    )

    def check(results):
        assert sorted(results) == [0, 1]
        assert OfferDecision.objects.get(order=order, kind="upsell").followup_flagged_at
        assert Event.objects.filter(order_id=order.pk, name="upsell_failed").count() == 1

    return ctx["tenant"], check


def _gates_release_stale(ctx):
    """An upsell queued behind a primary that settled 20 minutes ago, its release message lost."""
    make_catalog()
    client = ctx["client_for"](HOST)
    order = buy(client)
    token = offer_token(client, order)
    primary = ChargeAttempt.objects.filter(purpose=f"order:{order.pk}:primary")
    primary.update(status=AttemptStatus.PROCESSING, finished_at=None)
    client.post(f"/o/{order.token}/offer/accept", {"token": token})
    queued = ChargeAttempt.objects.filter(purpose=f"order:{order.pk}:upsell")
    assert queued.get().status == AttemptStatus.CREATED
    long_ago = timezone.now() - dt.timedelta(minutes=20)
    queued.update(created_at=long_ago)
    primary.update(status=AttemptStatus.SUCCEEDED, finished_at=long_ago)

    def check(results):
        attempt = queued.get()
        assert attempt.status == AttemptStatus.SUCCEEDED and attempt.sends == 1
        upsells = [
            i
            for i in gw.payment_intents()
            if i.metadata.to_dict().get("purpose") == attempt.purpose
        ]
        assert [i.status for i in upsells] == ["succeeded"]
        assert order.lines.filter(kind="upsell").count() == 1

    return ctx["tenant"], check


def _webhooks_overdue(ctx):
    """A partner delivery whose task was lost, an hour overdue: posted once to a real receiver."""
    import http.server
    import threading

    from partners import services
    from partners.models import DeliveryStatus, WebhookDelivery, WebhookSubscription

    posts = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            posts.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ctx["request"].addfinalizer(server.shutdown)
    sub = WebhookSubscription.objects.create(
        url=f"http://127.0.0.1:{server.server_port}/hook",
        event_types=["refund_issued"],
        secret=services.webhook_secret_new(),
    )
    delivery = WebhookDelivery.objects.create(
        subscription=sub,
        event_id="evt_overdue",
        event_name="refund_issued",
        payload={"order_id": 1},
        next_attempt_at=timezone.now() - dt.timedelta(hours=1),
    )

    def check(results):
        assert sorted(results) == [0, 1]  # sent by one run, found leased or sent by the other
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 1
        assert len(posts) == 1

    return ctx["tenant"], check


def _receipts_overdue(ctx):
    """A paid order whose receipt task was lost, an hour ago: one receipt."""
    from storefront.models import Order
    from tests.delivery_support import paid_order

    mail.outbox = []
    order = paid_order(products=[ProductFactory()], email="late@example.com")
    Order.objects.filter(pk=order.pk).update(paid_at=timezone.now() - dt.timedelta(hours=1))

    def check(results):
        assert sorted(results) == [0, 1]
        assert [m.to for m in mail.outbox] == [["late@example.com"]]
        assert Order.objects.get(pk=order.pk).receipt_sent_at is not None

    return ctx["tenant"], check


def _guardrails(ctx):
    mail.outbox = []
    offer = OfferFactory(kind=OfferKind.BUMP, trigger_product=ProductFactory(), price_amount=900)
    for tag, count, refunded, days_ago in (("base", 40, 2, 30), ("spike", 25, 8, 2)):
        bump_sales(offer, count=count, refunded=refunded, days_ago=days_ago, tag=tag)

    def check(results):
        assert sorted(results, key=len) == [[], [offer.pk]]
        offer.refresh_from_db()
        assert offer.status == Offer.Status.PAUSED
        assert Event.objects.filter(name="offer_paused", offer_id=offer.pk).count() == 1
        assert len(mail.outbox) == 1

    return ctx["tenant"], check


def _subscriptions_renew(ctx):
    """A renewal due, and a dunning retry due on a card updated without the immediate retry:
    two runs at once make one charge each."""
    from subscriptions.models import PeriodStatus, Subscription, SubscriptionStatus
    from tests.subscriptions.helpers import gateway_charges, ledger_charges, plan, start

    now = timezone.now()
    due = start(plan(price=1500), started_at=now - dt.timedelta(days=40), email="a@example.com")
    Subscription.objects.filter(pk=due.pk).update(next_charge_at=now - dt.timedelta(minutes=1))
    failing = start(
        plan(price=2500),
        started_at=now - dt.timedelta(days=40),
        email="b@example.com",
        card="4000000000000341",
    )
    Subscription.objects.filter(pk=failing.pk).update(next_charge_at=now - dt.timedelta(days=2))
    from subscriptions import services

    services.renewal_charge(subscription_id=failing.pk, now=now)  # declined: past due
    period = failing.periods.get(number=failing.next_period)
    assert period.status == PeriodStatus.FAILED
    Subscription.objects.filter(pk=failing.pk).update(
        payment_method_ref=_card(failing.customer_ref)
    )
    type(period).objects.filter(pk=period.pk).update(next_retry_at=now - dt.timedelta(minutes=1))

    def check(results):
        for sub in (due, failing):
            sub.refresh_from_db()
            assert sub.status == SubscriptionStatus.ACTIVE
            assert len(gateway_charges(sub)) == 1 and ledger_charges(sub) == gateway_charges(sub)
        assert ChargeAttempt.objects.filter(status=AttemptStatus.SUCCEEDED).count() == 2

    return ctx["tenant"], check


def _rollups(ctx):
    from analytics import selectors
    from analytics.models import RollupQueue
    from analytics.selectors import MetricFilter

    customer = Customer.objects.create(email="rollup@buyer.example")
    core = ProductFactory()
    make_order(
        customer,
        visitor="r1",
        source="ig",
        paid_at=timezone.now() - dt.timedelta(days=1),
        lines=[("core", core, None, 4900)],
    )
    assert RollupQueue.objects.exists()

    def check(results):
        assert not RollupQueue.objects.exists()
        # Folded in once: the read model equals the direct query, nothing counted twice.
        assert selectors.funnel(MetricFilter()) == selectors.funnel_direct(MetricFilter())
        assert selectors.order_value(MetricFilter()) == selectors.order_value_direct(MetricFilter())

    return ctx["tenant"], check


def _spares_refill(ctx):
    from tenants.pool import spare_count, spare_names, spares_drop_all

    ctx["request"].getfixturevalue("settings").TENANT_SPARE_SCHEMAS = 2
    connection.set_schema_to_public()
    spares_drop_all()
    ctx["request"].addfinalizer(spares_drop_all)

    def check(results):
        # One filler at a time: two spares made, not four (the other run found the lock
        # taken, or the pool full).
        assert sorted(results) == [0, 2]
        assert spare_count() == 2
        with connection.cursor() as cursor:
            cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE '\\_spare\\_%'")
            assert sorted(row[0] for row in cursor.fetchall()) == sorted(spare_names())

    return None, check


def _custom_domains_verify(ctx):
    """A pending custom domain whose records are published: two checks at once route it once."""
    from tenants import dns, domains
    from tenants.domains import custom_domain_add
    from tenants.models import CustomDomain, Domain

    settings = ctx["request"].getfixturevalue("settings")
    settings.PLATFORM_DOMAIN = "localhost"
    settings.CUSTOM_DOMAIN_TARGET = "edge.localhost"
    name = "twice.example.com"
    connection.set_schema_to_public()
    row = custom_domain_add(creator=ctx["tenant"], domain=name)

    def cleanup():
        connection.set_schema_to_public()
        Domain.objects.filter(domain=name).delete()
        CustomDomain.objects.filter(domain=name).delete()

    ctx["request"].addfinalizer(cleanup)
    answers = dns.StaticResolver(
        txt={f"_storefront-verify.{name}": [f"storefront-verify={row.token}"]},
        cname={name: "edge.localhost"},
    )
    ctx["monkeypatch"].setattr(domains, "default_resolver", lambda: answers)

    def check(results):
        connection.set_schema_to_public()
        # One routing row for the name, to this store, made by one of the two runs.
        assert list(Domain.objects.filter(domain=name).values_list("tenant_id", flat=True)) == [
            ctx["tenant"].pk
        ]
        row.refresh_from_db()
        assert row.verified_at is not None and row.last_error == ""
        assert Domain.objects.filter(tenant_id=ctx["tenant"].pk, is_primary=True).count() == 1

    return None, check


def _retention_prune(ctx):
    """A stored gateway event and a partner delivery past their retention, one of each not."""
    from partners.models import WebhookDelivery, WebhookSubscription
    from payments.models import WebhookEvent

    old = timezone.now() - dt.timedelta(days=400)
    for n, when in (("old", old), ("new", timezone.now())):
        event = WebhookEvent.objects.create(
            event_id=f"evt_{n}", event_type="x", object_type="y", object_id="z"
        )
        WebhookEvent.objects.filter(pk=event.pk).update(received_at=when, processed_at=when)
    sub = WebhookSubscription.objects.create(url="https://partner.example/h", secret="s" * 32)
    for n, when in (("old", old), ("new", timezone.now())):
        delivery = WebhookDelivery.objects.create(
            subscription=sub,
            event_id=n,
            event_name="x",
            payload={},
            status="succeeded",
            next_attempt_at=when,
        )
        WebhookDelivery.objects.filter(pk=delivery.pk).update(created_at=when)

    def check(results):
        assert sorted(r["gateway_webhook_events"] for r in results) == [0, 1]
        assert sorted(r["webhook_deliveries"] for r in results) == [0, 1]
        assert list(WebhookEvent.objects.values_list("event_id", flat=True)) == ["evt_new"]
        assert list(WebhookDelivery.objects.values_list("event_id", flat=True)) == ["new"]

    return ctx["tenant"], check


def _mail_upkeep(ctx):
    """A delivery report in the bounce mailbox: read once, one suppression."""
    from tenants.models import MailSuppression

    tmp = ctx["request"].getfixturevalue("tmp_path")
    for sub in ("new", "cur", "tmp"):
        (tmp / sub).mkdir()
    (tmp / "new" / "1.dsn").write_bytes(
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
        b"--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx\n\n"
        b"Final-Recipient: rfc822; twice@example.com\nAction: failed\nStatus: 5.1.1\n\n--b--\n"
    )
    ctx["request"].getfixturevalue("settings").MAIL_BOUNCE_MAILDIR = str(tmp)
    connection.set_schema_to_public()

    def cleanup():
        connection.set_schema_to_public()
        MailSuppression.objects.all().delete()

    ctx["request"].addfinalizer(cleanup)

    def check(results):
        connection.set_schema_to_public()
        assert sorted(r["suppressed"] for r in results) == [0, 1]
        assert MailSuppression.objects.count() == 1
        assert [p.name for p in (tmp / "new").iterdir()] == []
        assert len(list((tmp / "cur").iterdir())) == 1

    return None, check


def _coupon_holds(ctx):
    from django.test import Client

    from offers.models import Coupon, CouponRedemption
    from storefront.models import Order
    from tests.catalog import catalog
    from tests.factories import CouponFactory

    catalog(bump=False)
    coupon = CouponFactory(code="HELD", max_redemptions=5)
    started = Client(HTTP_HOST=HOST).post(
        "/checkout/course/start",
        {"email": "left@example.com", "country": "DE", "coupon": "HELD"},
    )
    assert started.status_code == 200, started.content
    Order.objects.update(created_at=timezone.now() - dt.timedelta(hours=2))
    assert Coupon.objects.get(pk=coupon.pk).times_redeemed == 1

    def check(results):
        assert sorted(results) == [0, 1]  # released by one run, found released by the other
        assert Coupon.objects.get(pk=coupon.pk).times_redeemed == 0
        assert CouponRedemption.objects.get().released_at is not None

    return ctx["tenant"], check


SCENARIOS = {
    "storefront.retention_prune": _retention_prune,
    "tenants.mail_upkeep": _mail_upkeep,
    "tenants.spares_refill": _spares_refill,
    "tenants.custom_domains_verify": _custom_domains_verify,
    "analytics.rollups_refresh": _rollups,
    "core.tasks.drain_outbox": _drain_outbox,
    "payments.reconcile": _reconcile,
    "payments.transfers_reconcile": _transfers_reconcile,
    "storefront.followups_send_due": _followups_send_due,
    "storefront.flag_abandoned_confirmations": _flag_abandoned,
    "storefront.gates_release_stale": _gates_release_stale,
    "storefront.receipts_send_overdue": _receipts_overdue,
    "partners.webhook_deliveries_overdue": _webhooks_overdue,
    "offers.guardrails_enforce": _guardrails,
    "subscriptions.renew_due": _subscriptions_renew,
    "storefront.coupon_holds_release": _coupon_holds,
}


@pytest.mark.parametrize("entry", sorted(app.conf.beat_schedule))
def test_each_beat_entrys_task_run_twice_at_once_has_the_effect_of_one_run(
    entry, live_tenant, client_for, monkeypatch, request, stripe_api_base
):
    schedule = app.conf.beat_schedule[entry]
    assert schedule["task"] == "core.tasks.fan_out"  # beat only fans out
    target = schedule["args"][0]
    assert target in SCENARIOS, f"beat entry {entry} ({target}) has no double-run scenario"
    ctx = {
        "tenant": live_tenant,
        "client_for": client_for,
        "monkeypatch": monkeypatch,
        "request": request,
    }
    tenant, check = SCENARIOS[target](ctx)
    if tenant is None:  # drain_outbox is public: beat's fan_out runs it directly
        results = _twice_at_once_public_fan_out(target)
    else:
        results = _twice_at_once(target, tenant)
    connection.set_tenant(live_tenant)
    check(results)


def _twice_at_once_public_fan_out(target: str) -> list:
    def run():
        connection.set_schema_to_public()
        return app.tasks["core.tasks.fan_out"].apply(args=(target,), throw=True).get()

    results, errors = in_threads(2, run, timeout=60)
    assert errors == []
    return results
