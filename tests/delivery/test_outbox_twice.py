"""Every task a paid checkout with its upsell leaves in the outbox changes nothing when it runs
a second time: delivery is at least once (a lost answer from the broker, a batch of a
commit's messages that failed partway: core/tasks.py `_send_together`, a worker killed before
its ack), so a second delivery must be harmless, over the local Stripe and a real SMTP server."""

import pytest
from django.apps import apps
from django.conf import settings
from django_tenants.utils import schema_context

from config.celery_app import app
from core.models import OutboxMessage
from tests import gateway_helpers as gw
from tests.upsell.helpers import buy, make_catalog, offer_token

pytestmark = pytest.mark.gateway
HOST = "t1.localhost"


def _state(smtp_mail) -> dict[str, int]:
    """Rows of every tenant table, the store's outbox, emails sent and the gateway's charges."""
    tenant_apps = {name.rsplit(".", 1)[-1] for name in settings.TENANT_APPS}
    counts = {
        model._meta.label: model._default_manager.count()
        for model in apps.get_models()
        if model._meta.app_label in tenant_apps and model._meta.managed and not model._meta.proxy
    }
    with schema_context("public"):
        counts["outbox"] = OutboxMessage.objects.filter(schema_name="t1").count()
    counts["emails"] = len(smtp_mail.messages)
    counts["payment_intents"] = len(gw.payment_intents())
    return counts


def _run_all_once() -> list[str]:
    app.loader.import_default_modules()  # every app's tasks, as a worker has them
    with schema_context("public"):
        queued = list(OutboxMessage.objects.filter(schema_name="t1").order_by("pk"))
    for message in queued:
        app.tasks[message.task_name](**message.kwargs)
    return [m.task_name for m in queued]


def test_each_outbox_task_of_a_checkout_with_its_upsell_runs_twice_to_the_same_state(
    tenant, client_for, smtp_mail
):
    make_catalog()
    client = client_for(HOST)
    order = buy(client)
    token = offer_token(client, order)
    assert client.post(f"/o/{order.token}/offer/accept", {"token": token}).status_code == 303

    ran = _run_all_once()
    assert {"storefront.send_receipt", "storefront.send_charge_receipt"} <= set(ran), ran
    once = _state(smtp_mail)
    # one email: the receipt, sent after the upsell, carries both invoices
    assert once["emails"] == 1 and once["storefront.Invoice"] == 2

    assert _run_all_once() == ran  # a second delivery of each, in the same order, adds none
    assert _state(smtp_mail) == once
