"""Outbound webhooks against a real local HTTP receiver that verifies the signature."""

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from core.models import OutboxMessage
from partners import services
from partners.models import DeliveryStatus, WebhookDelivery, WebhookSubscription


def _subscribe(url, secret, events=("refund_issued",)):
    return WebhookSubscription.objects.create(url=url, event_types=list(events), secret=secret)


def test_a_delivery_is_signed_and_the_receiver_verifies_it(receiver, tenant):
    secret = services.webhook_secret_new()
    url, handler = receiver(200, secret)
    sub = _subscribe(url, secret)
    [delivery] = services.webhook_dispatch("refund_issued", {"order_id": 7, "amount": 900})
    assert OutboxMessage.objects.filter(task_name="partners.webhook_deliver").exists()
    done = services.webhook_deliver(delivery_id=delivery.pk)
    assert done.status == DeliveryStatus.SUCCEEDED and done.attempts == 1
    [(verified, body, headers)] = handler.received
    assert verified and b'"order_id":7' in body
    assert headers["X-Storefront-Event"] == "refund_issued"
    # Run twice (a redelivered task): nothing is posted again.
    assert services.webhook_deliver(delivery_id=delivery.pk) is None
    assert len(handler.received) == 1
    assert sub.deliveries.count() == 1


def test_a_signature_with_another_secret_or_an_old_timestamp_does_not_verify():
    body = b'{"x":1}'
    sig = services.webhook_sign(secret="whsk_a", timestamp=1_000_000, body=body)
    assert services.webhook_verify(
        secret="whsk_a", timestamp="1000000", body=body, signature=sig, now=1_000_010
    )
    assert not services.webhook_verify(
        secret="whsk_b", timestamp="1000000", body=body, signature=sig, now=1_000_010
    )
    assert not services.webhook_verify(
        secret="whsk_a", timestamp="1000000", body=body, signature=sig, now=1_000_000 + 3600
    )


def test_a_failing_receiver_is_retried_with_backoff_then_marked_failed(receiver, tenant):
    secret = services.webhook_secret_new()
    url, handler = receiver(500, secret)
    _subscribe(url, secret)
    [delivery] = services.webhook_dispatch("refund_issued", {"order_id": 8})
    delays = []
    for attempt in range(1, services.MAX_ATTEMPTS + 1):
        result = services.webhook_deliver(delivery_id=delivery.pk)
        assert result.attempts == attempt and result.last_status_code == 500
        if attempt < services.MAX_ATTEMPTS:
            assert result.status == DeliveryStatus.PENDING
            # Not due yet: a task arriving early does nothing.
            assert services.webhook_deliver(delivery_id=delivery.pk) is None
            delays.append((result.next_attempt_at - timezone.now()).total_seconds())
            WebhookDelivery.objects.filter(pk=delivery.pk).update(
                next_attempt_at=timezone.now() - dt.timedelta(seconds=1)
            )
    assert result.status == DeliveryStatus.FAILED
    assert len(handler.received) == services.MAX_ATTEMPTS
    assert all(verified for verified, _, _ in handler.received)
    assert delays == sorted(delays) and delays[-1] > delays[0] * 4  # exponential backoff
    assert (
        OutboxMessage.objects.filter(
            task_name="partners.webhook_deliver", available_at__gt=timezone.now()
        ).count()
        >= 1
    )
    # Redelivery from the admin starts over and succeeds once the receiver is fixed.
    handler.status = 200
    services.webhook_redeliver(delivery=result)
    assert services.webhook_deliver(delivery_id=delivery.pk).status == DeliveryStatus.SUCCEEDED


def test_committed_events_reach_subscribers_through_the_analytics_listener(receiver, live_partners):
    from django.db import transaction

    from analytics.services import event_append

    secret = services.webhook_secret_new()
    url, handler = receiver(200, secret)
    _subscribe(url, secret, events=("checkout_completed",))
    with transaction.atomic():
        event = event_append("checkout_completed", order_id=42, amount=4900, currency="USD")
        event_append("page_viewed")  # not subscribed
        assert not WebhookDelivery.objects.exists()  # nothing before the commit
    delivery = WebhookDelivery.objects.get()
    assert delivery.event_name == "checkout_completed"
    assert delivery.event_id == services.webhook_event_id(event.pk)
    assert services.webhook_deliver(delivery_id=delivery.pk).status == DeliveryStatus.SUCCEEDED


# --- issue 20.5: store-scoped ids, deactivation, redirects, private targets -------------------


def test_deliveries_name_their_store_and_event_ids_differ_between_stores(
    receiver, tenant, other_tenant
):
    from django.db import connection

    secret = services.webhook_secret_new()
    url, handler = receiver(200, secret)
    ids = []
    for store in (tenant, other_tenant):
        connection.set_tenant(store)
        _subscribe(url, secret, events=("checkout_completed",))
        # The same event number in both stores (each store's events count from 1).
        event_id = services.webhook_event_id(1)
        [delivery] = services.webhook_dispatch("checkout_completed", {"id": 1}, event_id=event_id)
        assert services.webhook_deliver(delivery_id=delivery.pk).status == "succeeded"
        ids.append(event_id)
    connection.set_tenant(tenant)
    assert ids[0] != ids[1] and all(i.startswith("evt_") for i in ids)
    assert ids[0] == services.webhook_event_id(1)  # stable for one store's event
    (_, body_a, headers_a), (_, body_b, headers_b) = handler.received
    assert headers_a[services.STORE_HEADER] == tenant.schema_name
    assert headers_b[services.STORE_HEADER] == other_tenant.schema_name
    assert headers_a["X-Storefront-Delivery"] != headers_b["X-Storefront-Delivery"]
    import json

    assert json.loads(body_a)["store"] == tenant.schema_name
    assert json.loads(body_b)["store"] == other_tenant.schema_name


def test_deactivating_a_subscription_stops_retries_already_scheduled(receiver, tenant):
    secret = services.webhook_secret_new()
    url, handler = receiver(500, secret)
    sub = _subscribe(url, secret)
    [delivery] = services.webhook_dispatch("refund_issued", {"order_id": 9})
    assert services.webhook_deliver(delivery_id=delivery.pk).status == DeliveryStatus.PENDING
    assert len(handler.received) == 1
    WebhookSubscription.objects.filter(pk=sub.pk).update(is_active=False)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now() - dt.timedelta(seconds=1)
    )
    result = services.webhook_deliver(delivery_id=delivery.pk)  # the scheduled retry
    assert result.status == DeliveryStatus.FAILED
    assert "inactive" in result.last_error
    assert len(handler.received) == 1  # nothing was sent


@pytest.mark.parametrize("code", [301, 302, 307, 308])
def test_a_redirect_is_not_followed_and_is_recorded_as_a_failure(receiver, tenant, code):
    secret = services.webhook_secret_new()
    target, target_handler = receiver(200, secret)
    url, handler = receiver(code, secret, location=target)
    _subscribe(url, secret)
    [delivery] = services.webhook_dispatch("refund_issued", {"order_id": 10})
    result = services.webhook_deliver(delivery_id=delivery.pk)
    assert result.status == DeliveryStatus.PENDING and result.last_status_code == code
    assert "redirects are not followed" in result.last_error
    assert len(handler.received) == 1 and target_handler.received == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/hook",
        "http://localhost:{port}/hook",
        "http://[::1]:{port}/",
        "http://10.0.0.5:{port}/",
        "http://192.168.1.1:{port}/",
        "http://169.254.169.254/latest",
        "http://0.0.0.0:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
        "http://[fd00::1]/",
        "http://[fe80::1]/",
        "http://224.0.0.1/",
        "http://100.64.0.1/",
        "http://2130706433:{port}/",
    ],
)
def test_a_subscription_to_a_private_address_is_refused_when_saved_and_when_sent(
    receiver, tenant, settings, url
):
    from django.core.exceptions import ValidationError

    secret = services.webhook_secret_new()
    live, handler = receiver(404, secret)  # something answers on loopback
    port = live.rsplit(":", 1)[1].split("/")[0]
    url = url.format(port=port)
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    with pytest.raises(ValidationError):
        WebhookSubscription(url=url, event_types=["*"], secret=secret).full_clean()
    # Saved past the form (or the host resolved elsewhere when it was saved): refused at send.
    _subscribe(url, secret)
    [delivery] = services.webhook_dispatch("refund_issued", {"order_id": 11})
    result = services.webhook_deliver(delivery_id=delivery.pk)
    assert result.last_status_code is None
    assert result.last_error.startswith("refused:")
    assert handler.received == []  # nothing connected


def test_the_delivery_log_reads_the_same_whether_a_private_port_is_open_or_closed(
    receiver, tenant, settings
):
    import socket

    secret = services.webhook_secret_new()
    open_url, handler = receiver(404, secret)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    errors = []
    for url in (open_url, f"http://127.0.0.1:{closed_port}/hook"):
        sub = _subscribe(url, secret)
        [delivery] = services.webhook_dispatch("refund_issued", {"order_id": 12})
        result = services.webhook_deliver(delivery_id=delivery.pk)
        errors.append((result.last_status_code, result.last_error))
        WebhookSubscription.objects.filter(pk=sub.pk).update(is_active=False)
    assert errors[0] == errors[1]
    assert handler.received == []


def test_a_host_that_resolves_to_a_private_address_is_refused_at_send_time(
    receiver, tenant, settings, monkeypatch
):
    """DNS rebinding: public when saved, loopback when sent. The address checked is the
    address connected to."""
    import socket

    from core import outbound

    secret = services.webhook_secret_new()
    live, handler = receiver(200, secret)
    port = int(live.rsplit(":", 1)[1].split("/")[0])
    answers = iter(["93.184.216.34", "127.0.0.1"])

    def fake_getaddrinfo(host, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(outbound.socket, "getaddrinfo", fake_getaddrinfo)
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    sub = WebhookSubscription(
        url=f"http://hooks.partner.example:{port}/hook", event_types=["*"], secret=secret
    )
    sub.full_clean()  # public at save time
    sub.save()
    [delivery] = services.webhook_dispatch("refund_issued", {"order_id": 13})
    result = services.webhook_deliver(delivery_id=delivery.pk)
    assert result.last_error.startswith("refused:") and handler.received == []


def test_a_public_looking_host_is_connected_to_at_the_address_that_was_checked(
    receiver, tenant, monkeypatch
):
    """The check and the connection use one resolution: a name is never resolved twice."""
    import socket

    from core import outbound

    secret = services.webhook_secret_new()
    live, handler = receiver(200, secret)
    port = int(live.rsplit(":", 1)[1].split("/")[0])
    calls = []

    real_getaddrinfo = socket.getaddrinfo

    def fake_getaddrinfo(host, *args, **kwargs):
        if host == "127.0.0.1":  # connecting to a literal address resolves nothing
            return real_getaddrinfo(host, *args, **kwargs)
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(outbound.socket, "getaddrinfo", fake_getaddrinfo)
    _subscribe(f"http://hooks.partner.example:{port}/hook", secret)
    [delivery] = services.webhook_dispatch("refund_issued", {"order_id": 14})
    assert services.webhook_deliver(delivery_id=delivery.pk).status == "succeeded"
    assert calls == ["hooks.partner.example"]
    [(_, _, headers)] = handler.received
    assert headers["Host"] == f"hooks.partner.example:{port}"


# --- issue 15.5: account.updated and transfer.created ----------------------------------------


@pytest.fixture
def payout_routing_reset(django_db_blocker):
    yield
    from tenants.models import Creator

    with django_db_blocker.unblock():
        Creator.objects.filter(slug="t1").update(payout_account_ref="")


def _run_notices() -> int:
    """What a worker does with the queued notices (in queue order): each once, as the task."""
    from analytics.tasks import notice_dispatch

    ran = 0
    for message in OutboxMessage.objects.filter(
        task_name="analytics.notice_dispatch", dispatched_at__isnull=True
    ).order_by("pk"):
        notice_dispatch.apply(kwargs=message.kwargs, throw=True)
        OutboxMessage.objects.filter(pk=message.pk).update(dispatched_at=message.created_at)
        ran += 1
    return ran


def _delivered(handler, delivery) -> dict:
    import json

    assert services.webhook_deliver(delivery_id=delivery.pk).status == DeliveryStatus.SUCCEEDED
    verified, body, headers = handler.received[-1]
    assert verified and headers["X-Storefront-Event"] == delivery.event_name
    return json.loads(body)


@pytest.mark.gateway
def test_a_settled_charge_in_a_connected_store_sends_transfer_created_once(
    receiver,
    tenant,
    api_for,
    read_key,
    payout_routing_reset,
):
    from django.db import connection
    from django.test import Client

    from payments.gateway import TransferResult
    from payments.transfers import transfer_for_charge, transfer_record
    from tests.payments.helpers import catalog, checkout_started, connected_account, pay

    secret = services.webhook_secret_new()
    url, handler = receiver(200, secret)
    _subscribe(url, secret, events=("transfer.created",))
    connected_account()
    _core, bump = catalog()
    charge = pay(checkout_started(Client(HTTP_HOST="t1.localhost"), bump))
    connection.set_tenant(tenant)
    assert not WebhookDelivery.objects.exists()  # the charge alone is not a transfer

    row = transfer_for_charge(charge_attempt_id=charge.pk)
    # Settlement, its task and reconciliation may all come again: still one transfer.
    assert transfer_for_charge(charge_attempt_id=charge.pk).pk == row.pk
    transfer_record(
        transfer_id=row.pk,
        result=TransferResult(
            transfer_ref=row.gateway_ref, amount=None, destination=row.destination
        ),
    )
    assert row.status == "succeeded"
    # One notice, committed with the transfer's outcome (an outbox row, not an in-memory hook).
    [notice] = OutboxMessage.objects.filter(
        task_name="analytics.notice_dispatch", kwargs__name="transfer.created"
    )
    assert not WebhookDelivery.objects.exists()
    _run_notices()  # this one and the onboarding's account.updated (not subscribed to)
    [delivery] = WebhookDelivery.objects.all()
    assert delivery.event_name == "transfer.created"
    assert delivery.event_id == services.webhook_event_id(f"transfer.created:{row.pk}")
    sent = _delivered(handler, delivery)
    # The payload is what the partner API answers for the same transfer.
    api = api_for("t1.localhost", read_key).get(f"/api/v1/transfers/{row.pk}/").json()
    assert sent["type"] == "transfer.created" and sent["data"] == api
    assert api["amount"] == charge.amount - api["fee"] and api["transfer_ref"].startswith("tr_")
    # The notice's task run again (a redelivered message) adds no delivery.
    from analytics.tasks import notice_dispatch

    notice_dispatch.apply(kwargs=notice.kwargs, throw=True)
    assert WebhookDelivery.objects.count() == 1 and len(handler.received) == 1


def test_a_failed_transfer_sends_no_transfer_created(receiver, tenant):
    from payments.models import ChargeAttempt, TransferAttempt
    from payments.transfers import transfer_record

    secret = services.webhook_secret_new()
    url, handler = receiver(200, secret)
    _subscribe(url, secret, events=("transfer.created",))
    charge = ChargeAttempt.objects.create(
        purpose="p-1",
        idempotency_key="k-1",
        reference="order:1",
        amount=1000,
        currency="USD",
        customer_ref="cus",
        payment_method_ref="pm",
        status="succeeded",
    )
    row = TransferAttempt.objects.create(
        charge_attempt=charge,
        idempotency_key="transfer:t1:1",
        destination="acct_x",
        transfer_group="order:1",
        gross=1000,
        fee=100,
        amount=900,
        currency="USD",
        status="in_flight",
    )
    assert transfer_record(transfer_id=row.pk, result=None, message="refused").status == "failed"
    assert _run_notices() == 0
    assert not WebhookDelivery.objects.exists()


def test_account_updated_is_sent_once_per_change_of_the_payout_state(receiver, tenant, monkeypatch):
    from payments import connect
    from payments.gateway import ConnectedAccount
    from payments.models import PayoutAccount

    secret = services.webhook_secret_new()
    url, handler = receiver(200, secret)
    _subscribe(url, secret, events=("account.updated",))
    PayoutAccount.objects.create(idempotency_key="connect-account:t1:w", account_ref="acct_w")
    states = []

    class Gateway:
        def connected_account_retrieve(self, account_ref):
            return states[-1]

    monkeypatch.setattr(connect, "get_gateway", Gateway)

    def read(**state) -> list:
        states.append(ConnectedAccount(account_ref="acct_w", **state))
        connect.payout_account_sync()
        _run_notices()
        return list(WebhookDelivery.objects.order_by("pk"))

    pending = dict(
        charges_enabled=False,
        payouts_enabled=False,
        details_submitted=True,
        requirements_due=("external_account",),
    )
    enabled = dict(charges_enabled=True, payouts_enabled=True, details_submitted=True)
    assert len(read(**pending)) == 1  # defaults → details submitted, something due
    assert len(read(**pending)) == 1  # the same state read again: no change, nothing sent
    assert len(read(**enabled)) == 2
    assert len(read(**enabled)) == 2
    deliveries = read(**pending)  # back to a state seen before: a new change, a new event
    assert len(deliveries) == 3
    assert len({d.event_id for d in deliveries}) == 3
    assert [d.payload["payouts_enabled"] for d in deliveries] == [False, True, False]
    sent = _delivered(handler, deliveries[1])
    assert sent["type"] == "account.updated"
    assert sent["data"]["charges_enabled"] and sent["data"]["requirements_due"] == []
    assert "acct_w" not in str(sent)  # the state only: no account id, link or key


def test_the_cached_no_subscribers_answer_is_per_store_and_never_hides_a_new_subscription(
    tenant, other_tenant
):
    """`webhooks_active_any` spares every funnel event a query by caching "none" for a while.
    The cached answer is the store's own (the cache key carries the schema), and a
    subscription saved after "none" was cached is seen at once: no event is lost to it."""
    from django.core.cache import cache

    cache.clear()
    assert services.webhooks_active_any() is False  # t1 has none: cached
    connection.set_tenant(other_tenant)
    _subscribe("https://partner.example/hook", services.webhook_secret_new())
    assert services.webhooks_active_any() is True
    connection.set_tenant(tenant)
    assert services.webhooks_active_any() is False  # t2's subscription is not t1's
    sub = _subscribe("https://partner.example/hook", services.webhook_secret_new())
    assert services.webhooks_active_any() is True  # the cached "none" did not hide it
    [delivery] = services.webhook_dispatch("refund_issued", {"order_id": 7, "amount": 900})
    assert delivery.subscription_id == sub.pk
