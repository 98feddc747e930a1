"""Upsell accept in few statements (bench/README.md, "Fewer statements on the money routes"):
the claim returns the primary payment's status and the saved card, the recording reads the
decision with its order locked. What those reads decide must still be decided."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from offers.models import DecisionStatus, OfferDecision
from payments import services as payments
from payments.gateway import PaymentResult, PaymentStatus, get_gateway, use_gateway
from payments.models import AttemptStatus, ChargeAttempt, LedgerEntry, SavedPaymentMethod
from storefront.models import OrderStatus
from tests import gateway_helpers as gw
from tests.upsell.helpers import (
    PendingPrimaryGateway,
    buy,
    host_cached,
    make_catalog,
    offer_token,
)

UPSELL_TOTAL = 1200 + 228  # the catalog's upsell: 1200 net + 19% VAT

pytestmark = pytest.mark.gateway

HOST = "t1.localhost"


@pytest.fixture
def catalog(tenant):
    return make_catalog()


def _accept(client, order, token):
    return client.post(f"/o/{order.token}/offer/accept", {"token": token})


def _business(context) -> list[str]:
    # As tests/storefront/test_checkout_flow.py counts: SAVEPOINT/RELEASE exist only because
    # the test runs inside a transaction, SET search_path is routing's.
    skipped = ("SET search_path", "SAVEPOINT", "RELEASE SAVEPOINT")
    return [q["sql"] for q in context.captured_queries if not q["sql"].startswith(skipped)]


def test_an_accept_charges_once_in_a_bounded_number_of_statements(catalog, client_for):
    _, bump, _, _ = catalog
    client = client_for(HOST)
    order = buy(client, bump=bump.pk)
    token = offer_token(client, order)
    host_cached(client, HOST, f"/o/{order.token}/offer")
    with CaptureQueriesContext(connection) as context:
        accepted = _accept(client, order, token)
    sql = _business(context)
    assert accepted.status_code == 303
    # bench/README.md: 15 in the bench's store, with its savepoint pair and the after-commit
    # outbox claim; here the savepoints are skipped and the transaction never commits.
    assert 8 <= len(sql) <= 12, "\n".join(q[:110] for q in sql)
    assert sum(q.startswith('INSERT INTO "payments_chargeattempt"') for q in sql) == 1
    attempt = ChargeAttempt.objects.get(purpose=f"order:{order.pk}:upsell")
    assert (attempt.status, attempt.sends, attempt.amount) == (
        AttemptStatus.SUCCEEDED,
        1,
        UPSELL_TOTAL,
    )
    # The card the claim's statement read is the buyer's saved card and gateway customer.
    method = payments.vault_method_for(email=order.customer.email)
    assert (attempt.payment_method_ref, attempt.customer_ref) == (
        method.gateway_ref,
        method.customer.gateway_ref,
    )
    line = order.lines.get(kind="upsell")
    assert LedgerEntry.objects.get(line_key=line.line_key).amount == UPSELL_TOTAL
    decision = OfferDecision.objects.get(order=order, attempt=attempt)
    assert decision.status == DecisionStatus.ACCEPTED
    assert len([i for i in gw.payment_intents() if i.status == "succeeded"]) == 2


def test_an_accept_without_a_saved_card_is_refused_and_the_offer_stays_open(catalog, client_for):
    client = client_for(HOST)
    order = buy(client)
    token = offer_token(client, order)
    SavedPaymentMethod.objects.all().delete()  # e.g. the buyer removed it meanwhile

    refused = _accept(client, order, token)

    assert refused.status_code == 409 and "no saved card" in refused.content.decode().lower()
    assert not ChargeAttempt.objects.filter(purpose=f"order:{order.pk}:upsell").exists()
    # Refused inside the claim's transaction: the claim is undone, the token still valid.
    assert OfferDecision.objects.get(order=order).status == DecisionStatus.PRESENTED
    assert len(gw.payment_intents()) == 1


def test_an_accept_after_the_primary_failed_is_refused_with_no_charge(
    catalog, client_for, stripe_api_base
):
    client = client_for(HOST)
    gateway = PendingPrimaryGateway(get_gateway())
    use_gateway(gateway)
    try:
        order = buy(client, pay=False)
        client.post(f"/o/{order.token}/pay", {"setup_intent": order.setup_ref})
        token = offer_token(client, order)  # shown while the primary is processing
        primary = ChargeAttempt.objects.get(purpose=f"order:{order.pk}:primary")
        payments.attempt_record_result(
            attempt_id=primary.pk,
            result=PaymentResult(PaymentStatus.DECLINED, payment_ref="pi_slow_primary"),
        )
        order.refresh_from_db()
        assert order.status == OrderStatus.FAILED

        refused = _accept(client, order, token)
    finally:
        use_gateway(None)

    assert refused.status_code == 409 and "did not go through" in refused.content.decode()
    assert not ChargeAttempt.objects.filter(purpose=f"order:{order.pk}:upsell").exists()
    assert gateway.sent == [f"order:{order.pk}:primary"]
