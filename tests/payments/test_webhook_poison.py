"""One bad webhook event never stops reconciliation for its store: signed but malformed bodies
are refused with a 400 (nothing stored), and an event that cannot be processed is skipped,
recorded and, after LOOP_QUARANTINE_AFTER runs, quarantined and shown to the creator."""

import datetime as dt
import json

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from core.models import OutboxMessage
from payments.models import WebhookEvent
from payments.reconciliation import reconcile_run
from storefront.models import OrderStatus
from tests import gateway_helpers as gw
from tests.loops_support import needs_attention_page
from tests.payments import helpers as h

pytestmark = pytest.mark.gateway
NOW = {"in_flight_grace": dt.timedelta(0), "resend_after": dt.timedelta(0)}


def _post_signed(client, body: bytes):
    import hashlib
    import hmac
    import time

    from django.conf import settings

    ts = int(time.time())
    digest = hmac.new(
        settings.STRIPE_WEBHOOK_SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return client.post(
        "/webhooks/stripe/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=f"t={ts},v1={digest}",
    )


def _with(**changes) -> bytes:
    evt = h.event("evt_shape", "payment_intent.succeeded", "payment_intent", "pi_shape")
    for path, value in changes.items():
        target = evt
        *parents, last = path.split("__")
        for part in parents:
            target = target[part]
        if value is _MISSING:
            del target[last]
        else:
            target[last] = value
    return json.dumps(evt).encode()


_MISSING = object()
MALFORMED = {
    "a JSON list": json.dumps(
        [h.event("evt_l", "payment_intent.succeeded", "payment_intent", "pi_l")]
    ).encode(),
    "a JSON number": b"42",
    "a JSON string": b'"evt"',
    "a number as the object id": _with(data__object__id=42),
    "an object as the object id": _with(data__object__id={"id": "pi_x"}),
    "a list as the object id": _with(data__object__id=["pi_x"]),
    "a null event id": _with(id=None),
    "a number as the event id": _with(id=7),
    "an object as the event id": _with(id={"x": 1}),
    "an empty event id": _with(id=""),
    "no event id": _with(id=_MISSING),
    "no type": _with(type=_MISSING),
    "a number as the type": _with(type=5),
    "no data": _with(data=_MISSING),
    "a list as data.object": _with(data__object=[1, 2]),
    "a null data.object": _with(data__object=None),
    "a string as created": _with(created="soon"),
    "an overlong event id": _with(id="evt_" + "x" * 200),
    "a control character in the object id": _with(data__object__id="pi_\u0007x"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_signed_but_malformed_event_is_refused_with_400_and_nothing_is_stored(
    tenant, client_for, case
):
    response = _post_signed(client_for("t1.localhost"), MALFORMED[case])

    assert response.status_code == 400, (case, response.content)
    assert "malformed" in response.json()["error"] or "no id" in response.json()["error"]
    assert not WebhookEvent.objects.exists()
    assert not WebhookEvent.objects.filter(event_id="None").exists()
    assert not OutboxMessage.objects.filter(task_name="payments.process_webhook_event").exists()


def test_a_well_formed_event_without_an_object_id_is_still_accepted(tenant, client_for):
    # balance.available and its like carry an object with no id: nothing to re-read, not an error.
    body = _with(
        type="balance.available", data__object__id=_MISSING, data__object__object="balance"
    )
    response = _post_signed(client_for("t1.localhost"), body)
    assert response.status_code == 200, response.content
    assert WebhookEvent.objects.get(event_id="evt_shape").object_id == ""


@pytest.fixture
def shop(tenant):
    return h.catalog()


def _loop_failures():
    from core.models import LoopFailure  # here, so the 400 tests above run on older code too
    from payments.reconciliation import LOOP_WEBHOOKS

    return LoopFailure.objects.filter(loop=LOOP_WEBHOOKS)


def _poisoned_backlog(client, shop, monkeypatch):
    """An order charged at the gateway whose only news is a webhook queued *behind* two bad
    events: a signed one for a payment the gateway does not know, and a malformed stored row."""
    order = h.checkout_started(client, shop[1])
    h.pay_and_crash(order, monkeypatch)
    (intent,) = gw.payment_intents()
    assert (
        h.deliver(
            client,
            h.event(
                "evt_unknown", "payment_intent.succeeded", "payment_intent", "pi_nobody_has_this"
            ),
        ).status_code
        == 200
    )
    WebhookEvent.objects.create(
        event_id="None",
        event_type="payment_intent.succeeded",
        object_type="payment_intent",
        object_id="None",
    )
    assert (
        h.deliver(
            client, h.event("evt_good", "payment_intent.succeeded", "payment_intent", intent.id)
        ).status_code
        == 200
    )
    return order


def test_a_poisoned_webhook_backlog_still_processes_the_events_queued_after_it(
    tenant, shop, client_for, monkeypatch, stripe_api_base
):
    order = _poisoned_backlog(client_for("t1.localhost"), shop, monkeypatch)
    # The attempt is recent: only the backlog sweep can settle the order.
    monkeypatch.setattr("payments.reconciliation._reconcile_attempts", lambda *a, **k: None)

    report = reconcile_run(**NOW)

    assert not report.gateway_down
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert WebhookEvent.objects.get(event_id="evt_good").processed_at is not None
    bad = WebhookEvent.objects.filter(event_id__in=["evt_unknown", "None"])
    assert not bad.filter(processed_at__isnull=False).exists()
    assert len(report.errors) == 2 and all("webhook event" in e for e in report.errors)
    failures = _loop_failures().filter(schema_name="t1")
    assert {f.record_id for f in failures} == {str(e.pk) for e in bad}
    assert all(f.tries == 1 and f.quarantined_at is None for f in failures)
    assert any("Not Found" in f.last_error or "No such" in f.last_error for f in failures)


def test_a_poison_event_is_quarantined_after_n_runs_and_shown_in_the_store_admin(
    tenant, other_tenant, shop, client_for, monkeypatch, settings, stripe_api_base, caplog
):
    settings.LOOP_QUARANTINE_AFTER = 3
    _poisoned_backlog(client_for("t1.localhost"), shop, monkeypatch)
    unknown = WebhookEvent.objects.get(event_id="evt_unknown")
    calls = []
    from payments import webhooks

    real = webhooks.webhook_event_process
    monkeypatch.setattr(
        webhooks,
        "webhook_event_process",
        lambda **kw: calls.append(kw["webhook_event_id"]) or real(**kw),
    )

    for _ in range(3):
        reconcile_run(**NOW)
    row = _loop_failures().get(record_id=str(unknown.pk))
    assert row.tries == 3 and row.quarantined_at is not None
    assert "evt_unknown" in row.label and row.schema_name == "t1"
    assert "loop record quarantined" in caplog.text

    calls.clear()
    reconcile_run(**NOW)
    assert unknown.pk not in calls  # quarantined: never retried by the loop
    assert _loop_failures().get(pk=row.pk).tries == 3

    html = needs_attention_page(tenant)
    assert "evt_unknown" in html
    assert "Not Found" in html or "No such" in html
    # …and only on this store's admin.
    assert "evt_unknown" not in needs_attention_page(other_tenant)


@pytest.mark.parametrize("outage", ["unavailable", "our key refused"])
def test_a_gateway_outage_counts_against_no_event(
    tenant, shop, client_for, monkeypatch, stripe_api_base, outage
):
    from payments.gateway import GatewayAuthFailed, GatewayUnavailable
    from payments.stripe_gateway import StripeGateway

    _poisoned_backlog(client_for("t1.localhost"), shop, monkeypatch)

    def down(self, *args, **kwargs):
        if outage == "unavailable":
            raise GatewayUnavailable("connection refused")
        raise GatewayAuthFailed("authentication: Invalid API Key provided")

    monkeypatch.setattr(StripeGateway, "payment_retrieve", down)
    monkeypatch.setattr(StripeGateway, "payments_recent", down)
    report = reconcile_run(**NOW)
    assert report.gateway_down
    assert not _loop_failures().filter(schema_name="t1").exists()


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=120),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
_field = st.one_of(
    st.just(_MISSING),
    _json,
    st.text(max_size=120),
    st.sampled_from(["evt_1", "pi_1", "payment_intent", "charge.refunded"]),
)


@hypothesis_settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    event_id=_field,
    event_type=_field,
    object_id=_field,
    object_type=_field,
    created=_field,
    whole=st.one_of(st.none(), _json),
)
def test_any_signed_body_gets_200_or_a_400_that_writes_nothing(
    tenant, client_for, event_id, event_type, object_id, object_type, created, whole
):
    if whole is not None:
        body = json.dumps(whole).encode()
    else:
        body = _with(
            id=event_id,
            type=event_type,
            data__object__id=object_id,
            data__object__object=object_type,
            created=created,
        )
    events = WebhookEvent.objects.count()
    queued = OutboxMessage.objects.filter(task_name="payments.process_webhook_event").count()

    response = _post_signed(client_for("t1.localhost"), body)

    assert response.status_code in (200, 400), response.content
    if response.status_code == 400:
        assert response.json()["error"]
        assert WebhookEvent.objects.count() == events
        assert (
            OutboxMessage.objects.filter(task_name="payments.process_webhook_event").count()
            == queued
        )
    else:
        stored = WebhookEvent.objects.get(event_id=response.json()["received"])
        assert stored.event_id not in ("", "None") and stored.event_id.isprintable()
        assert isinstance(event_id, str) and stored.event_id == event_id
