"""Shared by the payments tests: signed gateway events, running queued payments tasks,
and an order paid (or left in flight) through the real checkout over localstripe."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time

import stripe
from django.conf import settings

from core.models import OutboxMessage
from storefront.models import Order
from storefront.services import checkout as checkout_service
from tests import gateway_helpers as gw
from tests.catalog import catalog as shared_catalog

CORE_TOTAL, BUMP_TOTAL = 4900 + 931, 900 + 171  # 19% VAT on top of each line
ORDER_TOTAL = CORE_TOTAL + BUMP_TOTAL


def sdk() -> stripe.StripeClient:
    return stripe.StripeClient(
        "sk_test_local", base_addresses={"api": os.environ["STRIPE_API_BASE"]}
    )


def signed(
    event: dict, *, secret: str | None = None, timestamp: int | None = None
) -> tuple[bytes, str]:
    """Stripe's scheme: header t=<ts>,v1=HMAC-SHA256(secret, "<ts>.<payload>")."""
    body = json.dumps(event).encode()
    ts = int(time.time()) if timestamp is None else timestamp
    key = (secret if secret is not None else settings.STRIPE_WEBHOOK_SECRET).encode()
    digest = hmac.new(key, f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return body, f"t={ts},v1={digest}"


def event(event_id: str, event_type: str, obj_type: str, obj_id: str) -> dict:
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "api_version": "2024-10-28",
        "livemode": False,
        "data": {"object": {"id": obj_id, "object": obj_type}},
    }


def deliver(client, evt: dict, path: str = "/webhooks/stripe/"):
    body, header = signed(evt)
    return client.post(
        path, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )


def run_payment_tasks(tenant) -> int:
    """What the worker would do with the queued webhook tasks (in enqueue order)."""
    from django.db import connection

    from payments.tasks import process_webhook_event

    connection.set_tenant(tenant)
    ran = 0
    for message in OutboxMessage.objects.filter(
        task_name="payments.process_webhook_event",
        dispatched_at__isnull=True,
        schema_name=tenant.schema_name,
    ).order_by("pk"):
        process_webhook_event.apply(kwargs=message.kwargs, throw=True)
        OutboxMessage.objects.filter(pk=message.pk).update(dispatched_at=message.created_at)
        ran += 1
    return ran


def catalog():
    """(core, bump) from the one test catalog (tests/catalog.py)."""
    c = shared_catalog()
    return c.core, c.bump


def checkout_started(client, bump) -> Order:
    """Order started with core + bump and the card set up in the 'browser'."""
    response = client.post(
        "/checkout/course/start",
        {
            "email": "buyer@example.com",
            "country": "DE",
            "region": "",
            "save_card": "on",
            "bump": bump.pk,
            "add_bump": "on",
        },
    )
    assert response.status_code == 200, response.content
    order = Order.objects.get(token=response.json()["order"])
    assert gw.confirm_card_setup(order.setup_ref) == "succeeded"
    return order


def pay(order: Order):
    return checkout_service.checkout_pay(order_token=order.token, setup_ref=order.setup_ref)


class Crash(RuntimeError):
    """The process died right after the gateway answered."""


def pay_and_crash(order: Order, monkeypatch) -> None:
    """Charge at the gateway, then die before recording the outcome."""
    import pytest

    from payments import services

    def crash(**kwargs):
        raise Crash("killed after the gateway call")

    with monkeypatch.context() as patched:
        patched.setattr(services, "attempt_record_result", crash)
        with pytest.raises(Crash):
            pay(order)


def connected_account() -> str:
    """The current store's connected account, made and onboarded at the local Stripe server
    (payments.connect), as a creator pressing the onboarding page's one button would."""
    from devtools.localstripe_connect import onboarding_link_complete
    from payments import connect

    onboarding_link_complete(
        connect.payout_account_connect(
            refresh_url="http://t1.localhost/r", return_url="http://t1.localhost/b"
        )
    )
    account = connect.payout_account_sync()
    assert account.payouts_enabled
    return account.account_ref


def disputing_gateway(api_base: str):
    """The localstripe-backed gateway with disputes stood in for: set `.disputes[ref]` to what
    `dispute_retrieve` answers (a status the test chooses at any moment, e.g. to replay a
    stale read; the local Stripe's own disputes, devtools/localstripe_disputes.py, are read
    through the real SDK in tests/payments/test_disputes.py). A generator for a fixture to
    yield from: installed for the test, removed after."""
    from payments.gateway import DisputeResult, use_gateway
    from payments.stripe_gateway import StripeGateway

    class DisputingGateway(StripeGateway):
        disputes: dict[str, DisputeResult]

        def dispute_retrieve(self, dispute_ref: str) -> DisputeResult:
            return self.disputes[dispute_ref]

        def says(self, ref: str, charge, status: str, amount: int | None = None) -> None:
            """From now on, dispute `ref` of `charge` reads as `status` (for `amount`, the
            whole charge by default)."""
            from core.money import Money

            self.disputes[ref] = DisputeResult(
                dispute_ref=ref,
                payment_ref=charge.gateway_ref,
                amount=Money(charge.amount if amount is None else amount, "USD"),
                status=status,
                reason="fraudulent",
            )

    gateway = DisputingGateway(secret_key="sk_test_local", api_base=api_base, timeout=5)
    gateway.disputes = {}
    use_gateway(gateway)
    yield gateway
    use_gateway(None)


def connected_balance(account_ref: str) -> int:
    """What a connected account holds at the local Stripe server (available)."""
    balance = sdk().v1.balance.retrieve(options={"stripe_account": account_ref})
    return sum(item.amount for item in balance.available)
