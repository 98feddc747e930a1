"""Every API route from the schema, with store A's key, against store B's host and B's ids."""

import json
import re

import pytest
from django.db import connection
from django.utils import timezone

from analytics.models import Experiment
from analytics.services import event_append
from audit.models import AuditEntry
from offers.models import Coupon, Offer
from payments.models import ChargeAttempt, PayoutAccount, Refund, TransferAttempt
from storefront.models import Customer, Order, OrderLine, PrivacyRequest, Product
from tests.factories import CouponFactory, OfferFactory, ProductFactory

MARKERS = [
    "b-secret-product",
    "b-buyer@t2.example",
    "B-ONLY-HEADLINE",
    "tokenofstoreb",
    "B-ONLY-EXPERIMENT",
    "tr_BONLYTRANSFER",
    "order:b-only-charge",
    "b-only-disabled-reason",
    "b-only-end-reason",
    "BONLYCOUPON",
]


@pytest.fixture
def store_b(tenant, other_tenant):
    """Objects in t2's schema, with markers no t1 object has."""
    connection.set_tenant(other_tenant)
    product = ProductFactory(slug="b-secret-product", name="B product")
    offer = OfferFactory(trigger_product=product, headline="B-ONLY-HEADLINE")
    coupon = CouponFactory(code="BONLYCOUPON", max_redemptions=5)
    customer = Customer.objects.create(email="b-buyer@t2.example")
    order = Order.objects.create(
        token="tokenofstoreb", customer=customer, currency="USD", country="US", status="paid"
    )
    line = OrderLine.objects.create(
        order=order,
        kind="core",
        product=product,
        description="x",
        net_amount=4900,
        tax_amount=0,
        total_amount=4900,
        currency="USD",
        tax_rate=0,
        tax_inclusive=False,
        tax_country="US",
    )
    event = event_append("checkout_completed", order_id=order.pk, source="b-source")
    experiment = Experiment.objects.create(
        offer_id=offer.pk, name="B-ONLY-EXPERIMENT", kind="creative", variants={"a": {}, "b": {}}
    )
    charge = ChargeAttempt.objects.create(
        purpose="b-charge",
        idempotency_key="b-charge-key",
        reference="order:b-only-charge",
        amount=4900,
        currency="USD",
        customer_ref="cus_b",
        payment_method_ref="pm_b",
        status="succeeded",
        gateway_ref="pi_b",
    )
    transfer = TransferAttempt.objects.create(
        charge_attempt=charge,
        idempotency_key="transfer:t2:b",
        destination="acct_b",
        transfer_group=charge.reference,
        gross=4900,
        fee=200,
        amount=4700,
        currency="USD",
        status="succeeded",
        gateway_ref="tr_BONLYTRANSFER",
    )
    PayoutAccount.objects.create(
        idempotency_key="connect-account:t2:b",
        account_ref="acct_b",
        charges_enabled=True,
        disabled_reason="b-only-disabled-reason",
    )
    from subscriptions.models import Subscription

    subscription = Subscription.objects.create(
        customer=customer,
        product=product,
        kind="subscription",
        interval_unit="month",
        interval_count=1,
        amount=4900,
        currency="USD",
        anchor=timezone.now(),
        customer_ref="cus_b",
        payment_method_ref="pm_b",
        end_reason="b-only-end-reason",  # a marker the public shape carries
    )
    privacy = PrivacyRequest.objects.create(
        kind="export",
        channel="api",
        email="b-buyer@t2.example",
        email_digest="b",
        state="done",
        done_at=order.created_at,
        result={"email": "b-buyer@t2.example", "data": {}},
    )
    ids = {
        "subscriptions": subscription.pk,
        "privacy-requests": privacy.pk,
        "products": product.pk,
        "transfers": transfer.pk,
        "offers": offer.pk,
        "customers": customer.pk,
        "orders": order.pk,
        "events": event.pk,
        "line": line.pk,
        "experiments": experiment.pk,
        "coupons": coupon.pk,
    }
    connection.set_tenant(tenant)
    yield ids
    connection.set_tenant(tenant)


def _routes(api_for):
    schema = api_for("t1.localhost", None).get("/api/v1/schema/", {"format": "json"}).json()
    for path, item in schema["paths"].items():
        for method in item:
            if method in ("get", "post", "put", "patch", "delete"):
                yield path, method


def _fill(path: str, ids: dict) -> str:
    if "{id}" not in path:
        return path
    collection = path.split("/")[3]
    return re.sub(r"\{id\}", str(ids[collection]), path)


def _call(client, method, url, ids):
    # A body that every write route would accept, so a hole would show as a changed row.
    body = json.dumps(
        {
            "line_id": ids["line"],
            "kind": "bump",
            "price_amount": 100,
            "headline": "pwned",
            "benefit": "x",
            "reason": "x",
            "slug": "pwned",
            "name": "pwned",
            "ladder_position": 99,
            "product_ids": [ids["products"]],
            "offer_id": ids["offers"],
            "variants": {"a": {"headline": "pwned"}, "b": {}},
        }
    )
    if method == "get":
        return client.get(url)
    return getattr(client, method)(
        url, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="iso-1"
    )


def test_store_a_key_on_store_b_host_gets_nothing_on_any_route(
    api_for, write_key, store_b, other_tenant, settings
):
    # Every route must answer for itself, not the failed-authentication throttle (a 429).
    settings.API_AUTH_FAILURE_RATE = "1000/m"
    routes = list(_routes(api_for))
    assert len(routes) >= 12  # the walk covers the real schema, not an empty one
    paths = {path for path, _ in routes}
    assert {"/api/v1/transfers/{id}/", "/api/v1/payouts/account/"} <= paths
    b_client = api_for("t2.localhost", write_key)
    for path, method in routes:
        response = _call(b_client, method, _fill(path, store_b), store_b)
        assert response.status_code in (401, 403, 404), (method, path, response.status_code)
        text = response.content.decode()
        assert not any(m in text for m in MARKERS), (method, path, text)
    connection.set_tenant(other_tenant)
    assert Offer.objects.get(pk=store_b["offers"]).headline == "B-ONLY-HEADLINE"
    assert Offer.objects.get(pk=store_b["offers"]).status == "active"
    assert not Refund.objects.exists()
    product = Product.objects.get(pk=store_b["products"])
    assert (product.name, product.price_amount) == ("B product", 4900)
    assert Product.objects.count() == 2  # B's product and its offer's add-on: nothing added
    assert Experiment.objects.get(pk=store_b["experiments"]).status == "draft"
    assert Experiment.objects.count() == 1
    coupon = Coupon.objects.get()  # B's only coupon, unchanged
    assert (coupon.code, coupon.max_redemptions, coupon.active) == ("BONLYCOUPON", 5, True)
    assert not AuditEntry.objects.filter(actor_kind="api_key").exists()
    from subscriptions.models import Subscription

    b_subscription = Subscription.objects.get(pk=store_b["subscriptions"])
    assert b_subscription.status == "active" and not b_subscription.cancel_at_period_end
    assert PrivacyRequest.objects.count() == 1  # no request made in B's store by A's key


def test_store_a_key_on_its_own_host_never_sees_store_b_objects(api_for, write_key, store_b):
    a_client = api_for("t1.localhost", write_key)
    seen = 0
    for path, method in _routes(api_for):
        if method != "get":
            continue
        response = a_client.get(_fill(path, store_b))
        assert response.status_code in (200, 404), (path, response.status_code)
        text = response.content.decode()
        assert not any(m in text for m in MARKERS), (path, text)
        seen += 1
    assert seen >= 8
