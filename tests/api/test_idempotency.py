"""Refunds through the API: Idempotency-Key replay, conflicts and concurrency."""

import pytest
from django.test import Client

from analytics.models import Event
from payments.models import LedgerEntry, Refund
from tests.api.conftest import paid_order
from tests.concurrency import in_threads

pytestmark = pytest.mark.gateway


def _refund(api, order, line, key, **body):
    return api.post(
        f"/api/v1/orders/{order.pk}/refunds/",
        {"line_id": line.pk, **body},
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


def test_a_refund_with_the_same_key_and_body_is_replayed_not_repeated(
    api_for, write_key, stripe_api_base
):
    order = paid_order()
    line = order.lines.get()
    api = api_for("t1.localhost", write_key)
    first = _refund(api, order, line, "k-1", amount=1000, reason="asked")
    assert first.status_code == 201, first.content
    assert first.json()["status"] == "succeeded" and first.json()["amount"] == 1000
    again = _refund(api, order, line, "k-1", reason="asked", amount=1000)
    assert again.status_code == 201 and again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Refund.objects.filter(reference=order.reference).count() == 1
    assert LedgerEntry.objects.filter(reference=order.reference, kind="refund").count() == 1
    listed = api.get(f"/api/v1/orders/{order.pk}/refunds/").json()
    assert [r["id"] for r in listed] == [first.json()["id"]]


def test_the_same_key_with_a_different_body_is_a_409_and_refunds_nothing_more(
    api_for, write_key, stripe_api_base
):
    order = paid_order()
    line = order.lines.get()
    api = api_for("t1.localhost", write_key)
    assert _refund(api, order, line, "k-2", amount=1000).status_code == 201
    conflict = _refund(api, order, line, "k-2", amount=2000)
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "idempotency_key_reused"
    assert sum(Refund.objects.values_list("amount", flat=True)) == 1000


def test_a_request_refused_for_its_input_keeps_nothing_so_the_corrected_retry_may_reuse_the_key(
    api_for, write_key, stripe_api_base
):
    from partners.models import IdempotencyRecord

    order = paid_order()
    line = order.lines.get()
    api = api_for("t1.localhost", write_key)
    bad = _refund(api, order, line, "k-fix", amount="lots")
    assert bad.status_code == 400, bad.content
    assert not IdempotencyRecord.objects.exists()
    fixed = _refund(api, order, line, "k-fix", amount=1000)
    assert fixed.status_code == 201, fixed.content
    assert "Idempotent-Replayed" not in fixed
    assert sum(Refund.objects.values_list("amount", flat=True)) == 1000


def test_a_refund_without_an_idempotency_key_is_refused(api_for, write_key, stripe_api_base):
    order = paid_order()
    response = api_for("t1.localhost", write_key).post(
        f"/api/v1/orders/{order.pk}/refunds/",
        {"line_id": order.lines.get().pk},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_key_required"
    assert not Refund.objects.exists()


def test_a_refund_above_what_was_charged_is_refused_with_a_reason(
    api_for, write_key, stripe_api_base
):
    order = paid_order()
    line = order.lines.get()
    response = _refund(
        api_for("t1.localhost", write_key), order, line, "k-3", amount=line.total_amount + 1
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "refund_refused"
    assert not Refund.objects.exists()


def test_a_line_of_another_order_cannot_be_refunded_through_this_order(
    api_for, write_key, stripe_api_base
):
    order = paid_order()
    other = paid_order(price=3900, email="other@example.com")
    response = _refund(api_for("t1.localhost", write_key), order, other.lines.get(), "k-4")
    assert response.status_code == 400 and response.json()["error"]["code"] == "line_not_found"
    assert not Refund.objects.exists()


def test_twenty_concurrent_same_key_refund_requests_make_one_refund(live_partners, stripe_api_base):
    from partners.models import ApiKey
    from partners.services import api_key_create

    order = paid_order()
    line = order.lines.get()
    token = api_key_create(name="p", scope=ApiKey.Scope.WRITE).token

    def worker():
        client = Client(HTTP_HOST="t1.localhost", HTTP_AUTHORIZATION=f"Bearer {token}")
        response = client.post(
            f"/api/v1/orders/{order.pk}/refunds/",
            {"line_id": line.pk, "amount": 500},
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY="same-key",
        )
        return response.status_code, response.json()

    results, errors = in_threads(20, worker, timeout=60)
    assert errors == [] and len(results) == 20
    created = [body for code, body in results if code == 201]
    # Everyone either got the one refund (replayed) or was told it is still in progress.
    assert all(code in (201, 409) for code, _ in results), results
    assert created and len({body["id"] for body in created}) == 1
    assert Refund.objects.filter(reference=order.reference).count() == 1
    assert LedgerEntry.objects.filter(reference=order.reference, kind="refund").count() == 1
    assert Event.objects.filter(order_id=order.pk, name="refund_issued").count() <= 1


def test_the_same_key_and_body_through_two_write_keys_of_one_store_make_one_refund(
    api_for, write_key, stripe_api_base
):
    from partners.models import ApiKey
    from partners.services import api_key_create

    order = paid_order()
    line = order.lines.get()
    second_key = api_key_create(name="second", scope=ApiKey.Scope.WRITE).token
    first = _refund(api_for("t1.localhost", write_key), order, line, "k-store", amount=700)
    again = _refund(api_for("t1.localhost", second_key), order, line, "k-store", amount=700)
    assert first.status_code == 201 and again.status_code == 201, again.content
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Refund.objects.filter(reference=order.reference).count() == 1
    other_body = _refund(api_for("t1.localhost", second_key), order, line, "k-store", amount=800)
    assert other_body.status_code == 409
    assert other_body.json()["error"]["code"] == "idempotency_key_reused"
    assert LedgerEntry.objects.filter(reference=order.reference, kind="refund").count() == 1
