"""A real funnel (checkout with bump, one-click upsell, partner webhooks, audit, logs), then the
buyer's export and erasure. The export is checked against an independent walk over every
model that can point at a buyer; after the erasure no table of the store or the platform, no
stored payload and no log line of the run holds the address, and the ledger adds up as before."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.apps import apps
from django.conf import settings
from django.db import connection
from django.db.models import Sum

from analytics.models import Assignment, Event, Experiment
from analytics.services import event_append
from audit.services import audit_record
from core.logging import RedactSecretsFilter
from partners import services as partners
from partners.models import WebhookDelivery, WebhookSubscription
from payments.models import GatewayCustomer, LedgerEntry, SavedPaymentMethod
from storefront import tasks
from storefront.models import Customer, FollowUpSend, Order, OrderLine, PrivacyRequest
from storefront.privacy import services as privacy
from storefront.privacy.registry import needs_declaration
from tests.payments import helpers as h
from tests.upsell.helpers import buy, make_catalog, offer_token

pytestmark = [pytest.mark.gateway]
HOST = "t1.localhost"
EMAIL = "erase.me@example.com"
OTHER = "keep.me@example.com"


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def partner_receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


@pytest.fixture
def run_log(tmp_path):
    """The configured log handler (with its filters) also writing to a file, every logger at
    DEBUG: the log of this test run, as a deployment keeps it."""
    (configured,) = [
        h
        for h in logging.getLogger().handlers
        if any(isinstance(f, RedactSecretsFilter) for f in h.filters)
    ]
    path = tmp_path / "run.log"
    handler = logging.FileHandler(path)
    handler.setFormatter(configured.formatter)
    for f in configured.filters:
        handler.addFilter(f)
    root = logging.getLogger()
    loggers = [root] + [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)]
    levels = {lg: lg.level for lg in loggers}
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        handler.close()
        for lg, level in levels.items():
            lg.setLevel(level)


def _tables(schema: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = %s AND table_type = 'BASE TABLE' ORDER BY 1",
            [schema],
        )
        return [row[0] for row in cursor.fetchall()]


def tables_mentioning(text: str) -> dict[str, int]:
    """{schema.table: rows} for every row of the store's and the platform's schemas whose
    text (every column, JSON included) contains `text`, in any case."""
    found = {}
    with connection.cursor() as cursor:
        for schema in ("t1", "public"):
            for table in _tables(schema):
                cursor.execute(
                    f'SELECT count(*) FROM "{schema}"."{table}" AS r WHERE r::text ILIKE %s',
                    [f"%{text}%"],
                )
                count = cursor.fetchone()[0]
                if count:
                    found[f"{schema}.{table}"] = count
    return found


def rows_about(email: str) -> dict[str, set]:
    """Independently of the registry: {model label: pks} of every row, in every model the
    coverage rule flags, that mentions the address or points at one of its customers, gateway
    customers or orders (a foreign key, or a customer_id / order_id column or payload key)."""
    customers = set(Customer.objects.filter(email=email).values_list("pk", flat=True))
    gateway = set(GatewayCustomer.objects.filter(email=email).values_list("pk", flat=True))
    orders = set(Order.objects.filter(customer_id__in=customers).values_list("pk", flat=True))
    ids = {"storefront.customer": customers, "payments.gatewaycustomer": gateway}
    ids["storefront.order"] = orders
    tenant_labels = {a.rsplit(".", 1)[-1] for a in settings.TENANT_APPS}
    about: dict[str, set] = {}
    for model in apps.get_models():
        if model._meta.app_label not in tenant_labels or not needs_declaration(model):
            continue
        label, table = model._meta.label_lower, model._meta.db_table
        pk = model._meta.pk.column
        conditions, params = ["r::text ILIKE %s"], [f"%{email}%"]
        if label in ids:
            conditions.append(f"r.{pk} = ANY(%s)")
            params.append(list(ids[label]))
        for field in model._meta.concrete_fields:
            target = getattr(field, "related_model", None)
            target_label = target._meta.label_lower if target is not None else ""
            if target_label in ids:
                conditions.append(f'r."{field.column}" = ANY(%s)')
                params.append(list(ids[target_label]))
            elif field.column in ("customer_id", "order_id") and target is None:
                key = "storefront.customer" if field.column == "customer_id" else "storefront.order"
                conditions.append(f'r."{field.column}" = ANY(%s)')
                params.append(list(ids[key]))
            elif field.get_internal_type() == "JSONField":
                for key, source in (("customer_id", customers), ("order_id", orders)):
                    conditions.append(f"(r.\"{field.column}\"->>'{key}')::bigint = ANY(%s)")
                    params.append(list(source))
        with connection.cursor() as cursor:
            cursor.execute(
                f'SELECT r.{pk} FROM "{table}" AS r WHERE ' + " OR ".join(conditions), params
            )
            rows = {row[0] for row in cursor.fetchall()}
        if rows:
            about[label] = rows
    return about


def _worker(request) -> None:
    """What a worker does with the queued message."""
    tasks.privacy_request_process.apply(kwargs={"request_id": request.pk}, throw=True)


def _ledger_totals() -> dict:
    return {
        "ledger": list(
            LedgerEntry.objects.values("kind", "currency")
            .annotate(total=Sum("amount"))
            .order_by("kind", "currency")
        ),
        "lines": OrderLine.objects.aggregate(
            net=Sum("net_amount"), tax=Sum("tax_amount"), total=Sum("total_amount")
        ),
        "orders": sorted(Order.objects.values_list("pk", "status", "country")),
    }


def _funnel(client_for, partner_receiver):
    WebhookSubscription.objects.create(
        url=partner_receiver, event_types=["*"], secret=partners.webhook_secret_new()
    )
    _, bump, _, _ = make_catalog()
    client = client_for(HOST)
    order = buy(client, email=EMAIL, bump=bump.pk)
    accepted = client.post(f"/o/{order.token}/offer/accept", {"token": offer_token(client, order)})
    assert accepted.status_code == 303
    other = buy(client_for(HOST), email=OTHER)
    customer = Customer.objects.get(email=EMAIL)
    # What other code paths leave: a staff change in the audit trail that names the buyer,
    # an experiment arm keyed by the address (offers.experiments.buyer_key without a cookie),
    # an event and a stored partner payload that carry it.
    audit_record(
        request_or_actor="support",
        action="storefront.customer.change",
        obj=customer,
        changes={"email": [EMAIL.upper(), EMAIL]},
        summary=f"Fixed the case of {EMAIL.upper()}",
    )
    experiment = Experiment.objects.create(
        offer_id=1, name="t", kind="creative", variants={"a": {}, "b": {}}
    )
    Assignment.objects.create(experiment=experiment, visitor_key=f"email:{EMAIL}", variant="a")
    event_append("email_sent", customer_id=customer.pk, properties={"to": EMAIL})
    WebhookDelivery.objects.create(
        subscription=WebhookSubscription.objects.get(),
        event_id="evt_manual",
        event_name="email_sent",
        payload={"customer": {"email": EMAIL}},
        status="succeeded",
        next_attempt_at=order.created_at,
    )
    logging.getLogger("storefront.test").info("support looked up %s", EMAIL)
    return order, other


def test_export_holds_every_row_about_the_buyer_and_erasure_leaves_the_address_nowhere(
    live_tenant, client_for, partner_receiver, run_log, smtp_mail, stripe_api_base
):
    order, other = _funnel(client_for, partner_receiver)
    assert tables_mentioning(EMAIL)  # the address is in many places before
    assert SavedPaymentMethod.objects.filter(customer__email=EMAIL).exists()

    # Export: every row the independent walk finds is in the document.
    request = privacy.privacy_request_create(
        email=EMAIL, kind="export", channel="admin", requested_by="owner", actor="test"
    )
    assert request.state == "received"
    _worker(request)
    request.refresh_from_db()
    assert request.state == "done" and request.done_at is not None
    document = request.result
    about = rows_about(EMAIL)
    assert {"storefront.customer", "storefront.order", "storefront.orderline"} <= set(about)
    assert {"analytics.event", "partners.webhookdelivery", "offers.offerdecision"} <= set(about)
    assert document["data"]["payments.ledgerentry"]  # the books are in the export too
    for label, pks in about.items():
        exported = {row.get("id", row.get("order_id")) for row in document["data"][label]}
        assert pks <= exported, f"{label}: rows {sorted(pks - exported)} missing from the export"
    assert {row["id"] for row in document["data"]["storefront.order"]} == {order.pk}
    assert "client_secret" not in str(document["data"]["payments.chargeattempt"])

    # Erasure.
    before = _ledger_totals()
    erasure = privacy.privacy_request_create(
        email=EMAIL.upper(), kind="erasure", channel="admin", requested_by="owner", actor="test"
    )
    _worker(erasure)
    erasure.refresh_from_db()
    assert erasure.state == "done" and erasure.done_at is not None
    assert erasure.summary["storefront.customer"] == 1
    assert _ledger_totals() == before  # every cent and the tax records are still there
    assert tables_mentioning(EMAIL) == {}
    assert tables_mentioning("erase.me") == {}
    assert EMAIL not in run_log.read_text() and "erase.me" not in run_log.read_text()
    assert "[email:" in run_log.read_text()  # the log line is there, without the address

    customer = Customer.objects.get(pk=order.customer_id)
    assert customer.email.endswith("@erased.invalid") and customer.erased_at
    # The gateway's copy of the address is replaced too.
    gateway_customer = GatewayCustomer.objects.get(pk=customer.gateway_customer_id)
    at_gateway = h.sdk().v1.customers.retrieve(gateway_customer.gateway_ref)
    assert at_gateway.email == gateway_customer.email
    assert gateway_customer.email.endswith("@erased.invalid")
    assert customer.unsubscribed_at is not None
    assert not SavedPaymentMethod.objects.filter(customer__email__endswith="erased.invalid")
    assert not FollowUpSend.objects.filter(customer=customer, status="scheduled").exists()
    # Someone else's data is untouched.
    assert Customer.objects.filter(email=OTHER).exists()
    assert other.lines.count() == 1
    # The request's log stays for the creator, without the address.
    assert list(PrivacyRequest.objects.values_list("kind", "state", "email")) == [
        ("erasure", "done", ""),
        ("export", "done", ""),
    ]
    # The event log still counts the same events.
    assert Event.objects.filter(customer_id=customer.pk).count() >= 3
