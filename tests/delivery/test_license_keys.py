"""License keys: one per paid line of a product that gives them, unique, shown on the order
page, verified by partners through the API; another store's key is unknown."""

from django.db import connection
from django_tenants.utils import schema_context

from partners.models import ApiKey
from partners.services import api_key_create
from payments.models import LedgerEntry, LedgerKind
from storefront.models import LineAccess, OrderStatus
from storefront.services import delivery
from tests.delivery_support import paid_order
from tests.factories import ProductFactory


def _api(client_for, host, token):
    client = client_for(host)
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def _verify(client, key):
    return client.post("/api/v1/licenses/verify/", {"key": key}, content_type="application/json")


def test_each_paid_line_gets_its_own_key_shown_on_the_order_page(tenant, client_for):
    product = ProductFactory(name="Plugin", license_keys=True)
    plain = ProductFactory(name="Ebook")
    first = paid_order(products=[product, plain])
    second = paid_order(products=[product])
    keys = [
        delivery.order_access_ensure(order=order)[line.pk].license_key
        for order in (first, second)
        for line in order.lines.all()
    ]
    assert keys[1] is None  # the ebook gives no key
    a, b = keys[0], keys[2]
    assert a and b and a != b and len(a) == 29 and a.count("-") == 4
    # Made once: asking again gives the same key.
    assert delivery.order_access_ensure(order=first)[first.lines.first().pk].license_key == a
    page = client_for("t1.localhost").get(f"/o/{first.token}/").content.decode()
    assert a in page and b not in page


def test_a_partner_verifies_a_key_and_it_turns_invalid_after_a_refund(tenant, client_for):
    product = ProductFactory(slug="plugin", license_keys=True)
    order = paid_order(products=[product])
    line = order.lines.get()
    key = delivery.line_access_ensure(line=line).license_key
    read = api_key_create(name="reader", scope=ApiKey.Scope.READ).token
    api = _api(client_for, "t1.localhost", read)
    answer = _verify(api, key.lower().replace("-", " "))  # as a buyer might paste it
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["valid"] is True and body["status"] == "active"
    assert (body["key"], body["product"], body["order"], body["line_id"]) == (
        key,
        "plugin",
        order.token,
        line.pk,
    )
    LedgerEntry.objects.create(
        kind=LedgerKind.REFUND,
        gateway_ref="re_1",
        reference=order.reference,
        line_key=line.line_key,
        amount=line.total_amount,
        currency="USD",
    )
    type(order).objects.filter(pk=order.pk).update(status=OrderStatus.REFUNDED)
    body = _verify(api, key).json()
    assert body["valid"] is False and body["status"] == "refunded"
    page = client_for("t1.localhost").get(f"/o/{order.token}/").content.decode()
    assert key not in page


def test_a_key_of_another_store_or_a_made_up_one_is_not_found(tenant, client_for):
    with schema_context("t2"):
        theirs = paid_order(products=[ProductFactory(license_keys=True)])
        their_key = delivery.line_access_ensure(line=theirs.lines.get()).license_key
    connection.set_tenant(tenant)
    token = api_key_create(name="reader", scope=ApiKey.Scope.READ).token
    api = _api(client_for, "t1.localhost", token)
    for key in (their_key, "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"):
        answer = _verify(api, key)
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "license_not_found"
    connection.set_tenant(tenant)
    assert not LineAccess.objects.filter(license_key=their_key).exists()


def test_bad_input_and_no_key_are_refused_with_a_reason(tenant, client_for):
    token = api_key_create(name="reader", scope=ApiKey.Scope.READ).token
    api = _api(client_for, "t1.localhost", token)
    for body in ({}, {"key": 5}, {"key": ""}, {"key": "x" * 65}):
        answer = api.post("/api/v1/licenses/verify/", body, content_type="application/json")
        assert answer.status_code == 400, body
        assert "key" in answer.json()["error"]["fields"]
    assert _verify(api, "short").status_code == 404
    anonymous = client_for("t1.localhost").post(
        "/api/v1/licenses/verify/", {"key": "x"}, content_type="application/json"
    )
    assert anonymous.status_code in (401, 403)
