"""Refunds through the partner API go through the one refund service (storefront.services.
refunds): the line's tax is reversed in proportion, and every line, post-purchase lines
included, is named by its own id."""

import pytest

from payments.models import Refund
from storefront.models import LineKind
from tests.api.conftest import paid_order
from tests.upsell.helpers import buy, make_catalog, offer_token

pytestmark = pytest.mark.gateway

HOST = "t1.localhost"


def _refund(api, order, line, key, **body):
    return api.post(
        f"/api/v1/orders/{order.pk}/refunds/",
        {"line_id": line.pk, **body},
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


def test_a_refund_through_the_api_reverses_the_lines_tax_in_proportion(
    api_for, write_key, stripe_api_base
):
    order = paid_order()  # 4900 net + 19% VAT
    line = order.lines.get()
    assert line.tax_amount > 0
    api = api_for(HOST, write_key)
    part = _refund(api, order, line, "tax-1", amount=1000)
    assert part.status_code == 201, part.content
    rest = _refund(api, order, line, "tax-2")
    assert rest.status_code == 201, rest.content
    refunds = list(Refund.objects.filter(reference=order.reference).order_by("pk"))
    expected_first = round(1000 * line.tax_amount / line.total_amount)
    assert [r.tax_amount for r in refunds][0] == expected_first
    # A line refunded in full gives back exactly its tax, not a cent more or less.
    assert sum(r.tax_amount for r in refunds) == line.tax_amount
    assert sum(r.amount for r in refunds) == line.total_amount


def test_a_refund_of_an_upsell_line_names_that_line_not_the_order(
    api_for, write_key, client_for, stripe_api_base
):
    _, bump, _, _ = make_catalog()
    client = client_for(HOST)
    order = buy(client, bump=bump.pk)
    accepted = client.post(f"/o/{order.token}/offer/accept", {"token": offer_token(client, order)})
    assert accepted.status_code == 303
    upsell_line = order.lines.get(kind=LineKind.UPSELL)
    assert upsell_line.pk != order.pk  # else the bug (the order id) would look right
    api = api_for(HOST, write_key)
    created = _refund(api, order, upsell_line, "upsell-1", amount=100)
    assert created.status_code == 201, created.content
    assert created.json()["line_id"] == upsell_line.pk
    assert created.json()["order_id"] == order.pk
    listed = api.get(f"/api/v1/orders/{order.pk}/refunds/").json()
    assert [r["line_id"] for r in listed] == [upsell_line.pk]
    refund = Refund.objects.get(reference=order.reference)
    assert refund.line_key == upsell_line.line_key and refund.tax_amount > 0
