"""Privacy requests through each channel (store admin, partner API, the buyer's signed link),
their states, the same answer for an unknown address, bad input, and the append-only tables'
narrow exception."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError

from analytics.models import Event
from analytics.services import event_append
from audit.models import AuditEntry
from audit.services import audit_record
from partners import services as partners
from partners.models import ApiKey
from storefront import tasks
from storefront.models import Customer, PrivacyRequest
from storefront.privacy import services as privacy
from tests.followups.helpers import catalog, paid_order

HOST = "t1.localhost"


def _run_queued():
    """The worker's part: run what the requests queued (the outbox goes to the broker)."""
    for row in PrivacyRequest.objects.filter(state="received"):
        tasks.privacy_request_process.apply(kwargs={"request_id": row.pk}, throw=True)


def _create(email, kind="export", channel="admin"):
    return privacy.privacy_request_create(
        email=email, kind=kind, channel=channel, requested_by="owner", actor="test"
    )


def test_an_export_of_a_known_address_lists_its_rows_and_is_recorded_as_done(tenant):
    core, _, _ = catalog()
    order = paid_order("known@example.com", core)
    request = privacy.privacy_request_process(request_id=_create("Known@Example.com").pk)
    assert request.state == "done" and request.done_at is not None
    data = request.result["data"]
    assert [row["id"] for row in data["storefront.order"]] == [order.pk]
    assert [row["email"] for row in data["storefront.customer"]] == ["known@example.com"]
    assert request.summary["storefront.order"] == 1


def test_an_unknown_address_gets_the_same_shape_of_answer_as_a_known_one(tenant):
    core, _, _ = catalog()
    paid_order("known@example.com", core)
    known = privacy.privacy_request_process(request_id=_create("known@example.com").pk)
    unknown = privacy.privacy_request_process(request_id=_create("nobody@example.com").pk)
    assert unknown.state == known.state == "done"
    assert set(unknown.result) == set(known.result)
    assert set(unknown.result["data"]) == set(known.result["data"])
    # Nothing but the request itself (the buyer's requests are part of what is held on them).
    assert {label: len(rows) for label, rows in unknown.result["data"].items() if rows} == {
        "storefront.privacyrequest": 1
    }
    erased = privacy.privacy_request_process(
        request_id=_create("nobody@example.com", kind="erasure").pk
    )
    assert erased.state == "done"
    assert set(erased.summary) == {"storefront.privacyrequest"}  # its own address, forgotten
    assert Customer.objects.get().email == "known@example.com"


@pytest.mark.parametrize("bad", ["", "not-an-address", "a@b", "x" * 300 + "@example.com"])
def test_a_request_for_something_that_is_not_an_address_is_refused_and_writes_nothing(tenant, bad):
    with pytest.raises(privacy.PrivacyRequestRefused):
        _create(bad)
    assert not PrivacyRequest.objects.exists()


def test_running_a_request_twice_changes_nothing_the_second_time(tenant):
    core, _, _ = catalog()
    paid_order("twice@example.com", core)
    request = _create("twice@example.com", kind="erasure")
    first = privacy.privacy_request_process(request_id=request.pk)
    done_at = first.done_at
    second = privacy.privacy_request_process(request_id=request.pk)
    assert second.done_at == done_at and second.summary == first.summary
    assert AuditEntry.objects.filter(action="storefront.privacy.erasure.done").count() == 1


def test_the_event_log_and_audit_trail_stay_append_only_outside_an_erasure(tenant):
    event = event_append("page_viewed", visitor_id="v1", properties={"to": "a@example.com"})
    entry = audit_record(request_or_actor="t", action="x", summary="a@example.com")
    for model, pk, field in ((Event, event.pk, "properties"), (AuditEntry, entry.pk, "summary")):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            model.objects.filter(pk=pk).update(**{field: {} if field == "properties" else ""})
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            model.objects.filter(pk=pk).delete()


def test_inside_an_erasure_only_the_personal_columns_may_change_and_nothing_is_deleted(tenant):
    event = event_append("page_viewed", visitor_id="v1", amount=100, properties={"to": "x"})
    entry = audit_record(request_or_actor="t", action="x", summary="x")

    def in_scope(fn):
        with pytest.raises(DatabaseError, match="append-only"):
            with privacy.erasure_scope():
                fn()

    in_scope(lambda: Event.objects.filter(pk=event.pk).update(amount=1))
    in_scope(lambda: Event.objects.filter(pk=event.pk).update(name="email_sent"))
    in_scope(lambda: Event.objects.filter(pk=event.pk).delete())
    in_scope(lambda: AuditEntry.objects.filter(pk=entry.pk).update(action="y"))
    in_scope(lambda: AuditEntry.objects.filter(pk=entry.pk).delete())
    with privacy.erasure_scope():
        Event.objects.filter(pk=event.pk).update(properties={}, visitor_id="")
        AuditEntry.objects.filter(pk=entry.pk).update(summary="")
    # The exception ends with the scope, even inside a longer transaction.
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        Event.objects.filter(pk=event.pk).update(properties={"again": 1})
    event.refresh_from_db()
    assert event.amount == 100 and event.properties == {}


def test_a_partner_asks_through_the_api_with_an_idempotency_key_and_reads_the_state(
    tenant, client_for
):
    core, _, _ = catalog()
    paid_order("api@example.com", core)
    issued = partners.api_key_create(name="CRM", scope=ApiKey.Scope.WRITE)
    api = client_for(HOST)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {issued.token}"}

    def post(email, key):
        return api.post(
            "/api/v1/privacy-requests/",
            {"email": email, "kind": "export"},
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=key,
            **auth,
        )

    known, unknown = post("api@example.com", "k1"), post("nobody@example.com", "k2")
    assert known.status_code == unknown.status_code == 202, known.content
    assert set(known.json()) == set(unknown.json())
    assert known.json()["state"] == unknown.json()["state"]
    assert post("api@example.com", "k1").json()["id"] == known.json()["id"]  # a replay
    assert PrivacyRequest.objects.count() == 2
    _run_queued()
    read = api.get(f"/api/v1/privacy-requests/{known.json()['id']}/", **auth)
    assert read.status_code == 200
    body = read.json()
    assert body["state"] == "done" and body["done_at"]
    assert [o["id"] for o in body["export"]["data"]["storefront.order"]] != []
    bad = post("not an address", "k3")
    assert bad.status_code == 400 and "email" in bad.content.decode()
    assert PrivacyRequest.objects.count() == 2
    unsigned = api.post(
        "/api/v1/privacy-requests/",
        {"email": "x@example.com", "kind": "erasure"},
        content_type="application/json",
        **auth,
    )
    assert unsigned.status_code == 400  # no Idempotency-Key


def test_a_read_only_key_cannot_ask_for_an_erasure(tenant, client_for):
    issued = partners.api_key_create(name="BI", scope=ApiKey.Scope.READ)
    response = client_for(HOST).post(
        "/api/v1/privacy-requests/",
        {"email": "x@example.com", "kind": "erasure"},
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="k",
        HTTP_AUTHORIZATION=f"Bearer {issued.token}",
    )
    assert response.status_code == 403
    assert not PrivacyRequest.objects.exists()


def test_the_buyers_signed_link_exports_and_erases_their_own_data_only(tenant, client_for):
    core, _, _ = catalog()
    order = paid_order("link@example.com", core)
    other = paid_order("other@example.com", core)
    token = privacy.privacy_link_token(order=order, schema=connection.schema_name)
    client = client_for(HOST)
    page = client.get(f"/privacy/{token}")
    assert page.status_code == 200 and b"Download my data" in page.content
    assert b"link@example.com" not in page.content
    download = client.post(f"/privacy/{token}", {"kind": "export"})
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment")
    assert [o["id"] for o in download.json()["data"]["storefront.order"]] == [order.pk]
    unconfirmed = client.post(f"/privacy/{token}", {"kind": "erasure"})
    assert unconfirmed.status_code == 400 and b"confirm" in unconfirmed.content
    erased = client.post(f"/privacy/{token}", {"kind": "erasure", "confirm": "yes"})
    assert erased.status_code == 200 and b"privacy-erased" in erased.content
    assert list(PrivacyRequest.objects.values_list("channel", "kind", "state")) == [
        ("buyer", "erasure", "done"),
        ("buyer", "export", "done"),
    ]
    assert Customer.objects.get(pk=order.customer_id).erased_at is not None
    assert Customer.objects.get(pk=other.customer_id).email == "other@example.com"
    # Used up: the order's buyer is erased, the link no longer opens anything.
    assert client.get(f"/privacy/{token}").status_code == 404


def test_a_forged_or_other_stores_link_opens_nothing(tenant, client_for):
    core, _, _ = catalog()
    order = paid_order("link@example.com", core)
    other_store = privacy.privacy_link_token(order=order, schema="t2")
    client = client_for(HOST)
    assert client.get(f"/privacy/{other_store}").status_code == 404
    assert client.get("/privacy/forged").status_code == 404
    assert client.post("/privacy/forged", {"kind": "erasure", "confirm": "yes"}).status_code == 404
    assert not PrivacyRequest.objects.exists()


def test_the_creator_asks_in_the_admin_and_sees_each_request_with_its_state(tenant, client_for):
    core, _, _ = catalog()
    paid_order("admin@example.com", core)
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_superuser("privacy-owner", "o@example.com", "pw")
    client = client_for(HOST)
    client.force_login(user)
    added = client.post(
        "/admin/storefront/privacyrequest/add/", {"email": "admin@example.com", "kind": "export"}
    )
    assert added.status_code == 302, added.content.decode()[:2000]
    assert PrivacyRequest.objects.get().state == "received"
    _run_queued()
    listing = client.get("/admin/storefront/privacyrequest/")
    assert listing.status_code == 200
    text = listing.content.decode()
    assert "Download JSON" in text and "Done" in text
    request = PrivacyRequest.objects.get()
    assert request.requested_by == "privacy-owner" and request.channel == "admin"
    download = client.get(f"/admin/storefront/privacyrequest/{request.pk}/export.json")
    assert download.status_code == 200 and download.json()["email"] == "admin@example.com"
    assert AuditEntry.objects.filter(action="storefront.privacy.export.request").count() == 1
    refused = client.post(
        "/admin/storefront/privacyrequest/add/", {"email": "nope", "kind": "erasure"}
    )
    assert refused.status_code == 200 and "valid email" in refused.content.decode()
    assert PrivacyRequest.objects.count() == 1


def test_an_erasure_with_the_gateway_down_changes_nothing_and_succeeds_when_retried(
    tenant, monkeypatch
):
    from payments import services as payment_services
    from payments.gateway import GatewayUnavailable
    from payments.models import GatewayCustomer

    core, _, _ = catalog()
    order = paid_order("gw@example.com", core)
    gateway_customer = GatewayCustomer.objects.create(email="gw@example.com", gateway_ref="cus_1")
    Customer.objects.filter(pk=order.customer_id).update(gateway_customer=gateway_customer)
    redacted = []

    class Gateway:
        down = True

        def customer_redact(self, ref, *, email):
            if Gateway.down:
                raise GatewayUnavailable("timeout")
            redacted.append((ref, email))

    monkeypatch.setattr(payment_services, "get_gateway", lambda **_: Gateway())
    request = _create("gw@example.com", kind="erasure")
    with pytest.raises(GatewayUnavailable):
        privacy.privacy_request_process(request_id=request.pk)
    request.refresh_from_db()
    assert request.state == "failed" and request.error == "GatewayUnavailable"
    assert Customer.objects.get(pk=order.customer_id).email == "gw@example.com"
    assert GatewayCustomer.objects.get().email == "gw@example.com"

    Gateway.down = False
    assert privacy.privacy_request_process(request_id=request.pk).state == "done"
    assert redacted == [("cus_1", GatewayCustomer.objects.get().email)]
    assert GatewayCustomer.objects.get().email.endswith("@erased.invalid")
