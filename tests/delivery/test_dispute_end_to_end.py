"""Disputes through the real path: a checkout paid at the local Stripe, a dispute opened by
the buyer's bank there (devtools/localstripe_disputes.py), its charge.dispute.* webhooks
delivered signed, replayed and out of order, each re-read through the real SDK. Access is
suspended while the funds are withdrawn, restored when a win reinstates them, and ends when
the dispute is lost; the ledger nets to zero on a win; the admin lists the dispute with its
evidence due date."""

import re

import pytest
from django.core.files.base import ContentFile

from analytics import selectors
from analytics.rollups import rollups_refresh
from analytics.selectors import MetricFilter
from payments.models import Dispute, DisputeStatus, LedgerEntry, LedgerKind
from payments.reconciliation import reconcile_run
from storefront.models import OrderStatus
from tests import gateway_helpers as gw
from tests.api.conftest import paid_order
from tests.delivery_support import FILE_BYTES, file_remove
from tests.payments import helpers as h

pytestmark = pytest.mark.gateway


@pytest.fixture
def bought(tenant, stripe_api_base):
    order = paid_order()
    product = order.lines.get().product
    product.deliverable_url = ""
    product.deliverable_file.save("course.pdf", ContentFile(FILE_BYTES), save=True)
    yield order
    file_remove(product)


def _page(client, order) -> str:
    return client.get(f"/o/{order.token}/").content.decode()


def _href(client, order) -> str | None:
    found = re.search(r'href="(/d/[^"]+)" class="download"', _page(client, order))
    return found.group(1) if found else None


def _deliver(client, tenant, dispute_ref: str, *types: str, tag: str = "") -> None:
    for n, kind in enumerate(types):
        event = h.event(f"evt_{dispute_ref}_{kind}_{tag}{n}", kind, "dispute", dispute_ref)
        assert h.deliver(client, event).status_code == 200
    h.run_payment_tasks(tenant)


def _ledger(order) -> dict[str, int]:
    totals: dict[str, int] = {}
    for entry in LedgerEntry.objects.filter(reference=order.reference):
        totals[entry.kind] = totals.get(entry.kind, 0) + entry.amount
    return totals


def test_a_won_dispute_suspends_then_restores_access_and_nets_to_zero(tenant, bought, client_for):
    order = bought
    client = client_for("t1.localhost")
    href = _href(client, order)
    assert href and client.get(href).status_code == 200
    rollups_refresh()
    revenue_before = selectors.order_value(MetricFilter())

    payment = LedgerEntry.objects.get(reference=order.reference, kind=LedgerKind.CHARGE)
    dispute_ref = gw.dispute_open(payment.gateway_ref)
    _deliver(
        client, tenant, dispute_ref, "charge.dispute.created", "charge.dispute.funds_withdrawn"
    )
    dispute = Dispute.objects.get()
    assert dispute.status == DisputeStatus.NEEDS_RESPONSE and dispute.evidence_due_by
    assert dispute.amount == order.lines.get().total_amount and dispute.reason == "fraudulent"
    # Open, with the funds withdrawn: access is suspended, the page says why.
    response = client.get(href)
    assert response.status_code == 410 and b"disputed" in response.content
    assert _href(client, order) is None

    gw.dispute_submit(dispute_ref)  # the creator sends evidence (real SDK call)
    _deliver(client, tenant, dispute_ref, "charge.dispute.updated")
    assert Dispute.objects.get().status == DisputeStatus.UNDER_REVIEW

    gw.dispute_decide(dispute_ref, "won")
    # Out of order and replayed: the reinstatement before the close, then the open again.
    _deliver(
        client,
        tenant,
        dispute_ref,
        "charge.dispute.funds_reinstated",
        "charge.dispute.closed",
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
        tag="late",
    )
    assert Dispute.objects.count() == 1 and Dispute.objects.get().status == DisputeStatus.WON
    total = order.lines.get().total_amount
    assert _ledger(order) == {"charge": total, "chargeback": total, "reinstated": total}
    assert LedgerEntry.objects.filter(kind=LedgerKind.CHARGEBACK).count() == 1
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    href = _href(client, order)
    assert href and b"".join(client.get(href).streaming_content) == FILE_BYTES
    rollups_refresh()
    assert selectors.order_value(MetricFilter()) == revenue_before
    assert selectors.order_value_direct(MetricFilter()) == revenue_before


def test_a_lost_dispute_ends_access_and_the_admin_showed_it_open_with_its_due_date(
    tenant, bought, client_for
):
    order = bought
    client = client_for("t1.localhost")
    href = _href(client, order)
    payment = LedgerEntry.objects.get(reference=order.reference, kind=LedgerKind.CHARGE)
    dispute_ref = gw.dispute_open(payment.gateway_ref, evidence_days=5)
    _deliver(client, tenant, dispute_ref, "charge.dispute.created")
    due = Dispute.objects.get().evidence_due_by

    owner = client_for("t1.localhost")
    assert owner.login(username="owner", password="owner-pass-123")
    home = owner.get("/admin/").content.decode()
    assert "1 open dispute: the next response is due by" in home
    assert f"{due:%-d %b %Y} ({dispute_ref})" in home
    link = re.search(r'id="attention-open_disputes"><a href="([^"]+)"', home).group(1)
    assert dispute_ref in owner.get(link.replace("&amp;", "&")).content.decode()
    listed = owner.get("/admin/payments/dispute/").content.decode()
    (row,) = [r for r in listed.split("<tr") if dispute_ref in r]
    assert "Needs response" in row and f"{due:%-d %b %Y %H:%M} UTC" in row
    assert "$58.31" in row  # 4900 + 19% VAT, in the store's currency

    # The webhook of the decision is lost: the periodic reconciliation re-reads open disputes.
    gw.dispute_decide(dispute_ref, "lost")
    report = reconcile_run()
    assert report.disputes == 1 and not report.errors
    assert Dispute.objects.get().status == DisputeStatus.LOST
    _deliver(client, tenant, dispute_ref, "charge.dispute.closed")  # arrives late: no change
    assert _ledger(order) == {"charge": payment.amount, "chargeback": payment.amount}
    response = client.get(href)
    assert response.status_code == 410 and b"disputed" in response.content
    assert _href(client, order) is None and "/d/" not in _page(client, order)
    assert "dispute lost in the last 30 days" in owner.get("/admin/").content.decode()
