"""Partner API: the payout account state and the store's transfers (read only)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from payments.models import ChargeAttempt, PayoutAccount, TransferAttempt, TransferStatus


def _transfer(n: int, *, status=TransferStatus.SUCCEEDED, gross=4900, fee=200, currency="USD"):
    charge = ChargeAttempt.objects.create(
        purpose=f"test-charge-{connection.schema_name}-{n}",
        idempotency_key=f"test-charge-key-{connection.schema_name}-{n}",
        reference=f"order:{n}",
        amount=gross,
        currency=currency,
        customer_ref="cus_test",
        payment_method_ref="pm_test",
        status="succeeded",
        gateway_ref=f"pi_test_{n}",
    )
    return TransferAttempt.objects.create(
        charge_attempt=charge,
        idempotency_key=f"transfer:{connection.schema_name}:{charge.pk}",
        destination="acct_test",
        source_charge_ref=f"ch_test_{n}",
        transfer_group=charge.reference,
        gross=gross,
        fee=fee,
        amount=gross - fee,
        currency=currency,
        status=status,
        gateway_ref=f"tr_test_{n}" if status == TransferStatus.SUCCEEDED else "",
    )


def test_a_transfer_shows_its_charge_the_fee_and_what_the_store_receives(api_for, read_key, tenant):
    row = _transfer(1, gross=4900, fee=201)
    client = api_for("t1.localhost", read_key)
    body = client.get(f"/api/v1/transfers/{row.pk}/").json()
    assert body == {
        "id": row.pk,
        "reference": "order:1",
        "charge_ref": "ch_test_1",
        "gross": 4900,
        "fee": 201,
        "amount": 4699,
        "currency": "USD",
        "status": "succeeded",
        "transfer_ref": "tr_test_1",
        "created_at": body["created_at"],
    }
    assert dt.datetime.fromisoformat(body["created_at"]) == row.created_at
    listed = client.get("/api/v1/transfers/").json()
    assert listed["results"] == [body]


def test_transfers_are_filtered_by_status_and_created_range(api_for, read_key, tenant):
    old, new, failed = _transfer(1), _transfer(2), _transfer(3, status=TransferStatus.FAILED)
    TransferAttempt.objects.filter(pk=old.pk).update(
        created_at=dt.datetime(2026, 1, 1, 23, 30, tzinfo=dt.UTC)
    )
    client = api_for("t1.localhost", read_key)

    def ids(**params):
        response = client.get("/api/v1/transfers/", params)
        assert response.status_code == 200, response.content
        return [item["id"] for item in response.json()["results"]]

    assert ids() == [failed.pk, new.pk, old.pk]  # newest first
    assert ids(status="failed") == [failed.pk]
    assert ids(status="succeeded") == [new.pk, old.pk]
    # The half-open range [after, before), in UTC, as every list endpoint reads it.
    assert ids(created_before="2026-01-02T00:00:00Z") == [old.pk]
    assert ids(created_after="2026-01-02T00:00:00Z") == [failed.pk, new.pk]
    # An offset is honoured: 00:30+01:00 is 23:30Z, the old row's instant (included).
    assert ids(created_after="2026-01-02T00:30:00+01:00") == [failed.pk, new.pk, old.pk]
    assert ids(created_after="2026-01-02T00:30:01+01:00") == [failed.pk, new.pk]
    assert ids(created_after="2026-01-01T23:30:00Z", created_before="2026-01-01T23:30:01Z") == [
        old.pk
    ]


def test_transfer_pages_follow_the_cursor_without_skipping_or_repeating(api_for, read_key, tenant):
    rows = [_transfer(n) for n in range(1, 6)]
    client = api_for("t1.localhost", read_key)
    seen, url = [], "/api/v1/transfers/?page_size=2"
    while url:
        page = client.get(url).json()
        assert len(page["results"]) <= 2
        seen += [item["id"] for item in page["results"]]
        url = page["next"]
    assert seen == [row.pk for row in reversed(rows)]


@pytest.mark.parametrize(
    "query",
    [
        "status=paid",
        "created_after=yesterday",
        "created_before=",
        "page_size=0",
        "page_size=201",
        "status=failed&status=succeeded",
    ],
)
def test_bad_transfer_filters_are_a_json_400_with_the_reason(api_for, read_key, tenant, query):
    response = api_for("t1.localhost", read_key).get(f"/api/v1/transfers/?{query}")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error" and error["fields"]


@pytest.mark.parametrize("pk", ["999999", "abc", str(2**70)])
def test_an_unknown_transfer_is_a_json_404(api_for, read_key, tenant, pk):
    response = api_for("t1.localhost", read_key).get(f"/api/v1/transfers/{pk}/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_payout_account_shows_its_state_and_no_account_id(api_for, read_key, tenant):
    client = api_for("t1.localhost", read_key)
    assert client.get("/api/v1/payouts/account/").json() == {
        "connected": False,
        "charges_enabled": False,
        "payouts_enabled": False,
        "details_submitted": False,
        "requirements_due": [],
        "disabled_reason": "",
        "updated_at": None,
    }
    synced = timezone.now()
    PayoutAccount.objects.create(
        idempotency_key="connect-account:t1:test",
        account_ref="acct_SECRETISH123",
        charges_enabled=True,
        payouts_enabled=False,
        details_submitted=True,
        requirements_due=["external_account"],
        disabled_reason="requirements.pending_verification",
        synced_at=synced,
    )
    response = client.get("/api/v1/payouts/account/")
    assert response.status_code == 200
    body = response.json()
    assert body["connected"] and body["charges_enabled"] and body["details_submitted"]
    assert not body["payouts_enabled"]
    assert body["requirements_due"] == ["external_account"]
    assert body["disabled_reason"] == "requirements.pending_verification"
    assert dt.datetime.fromisoformat(body["updated_at"]) == synced
    assert "acct_" not in response.content.decode()  # and no key, link or secret of any kind


@pytest.mark.parametrize("path", ["/api/v1/transfers/", "/api/v1/payouts/account/"])
def test_payout_reads_need_a_key_and_are_read_only(api_for, read_key, write_key, tenant, path):
    assert api_for("t1.localhost", None).get(path).status_code == 401
    assert api_for("t1.localhost", "sfk_wrong").get(path).status_code == 401
    assert api_for("t1.localhost", read_key).get(path).status_code == 200
    assert api_for("t1.localhost", write_key).get(path).status_code == 200
    response = api_for("t1.localhost", write_key).post(path, {}, content_type="application/json")
    assert response.status_code in (403, 405)
    assert response.json()["error"]["code"] in ("permission_denied", "method_not_allowed")


def test_a_key_of_store_a_never_sees_store_b_transfers_or_account(
    api_for, read_key, tenant, other_tenant
):
    connection.set_tenant(other_tenant)
    b_row = _transfer(77)
    PayoutAccount.objects.create(
        idempotency_key="connect-account:t2:test",
        account_ref="acct_B",
        charges_enabled=True,
        payouts_enabled=True,
        disabled_reason="b-only-reason",
    )
    connection.set_tenant(tenant)
    a_row = _transfer(1)
    client = api_for("t1.localhost", read_key)
    assert [t["id"] for t in client.get("/api/v1/transfers/").json()["results"]] == [a_row.pk]
    if b_row.pk != a_row.pk:
        assert client.get(f"/api/v1/transfers/{b_row.pk}/").status_code == 404
    account = client.get("/api/v1/payouts/account/").json()
    assert account["connected"] is False and "b-only-reason" not in str(account)
    # And on B's host, A's key is not a key at all.
    assert api_for("t2.localhost", read_key).get("/api/v1/transfers/").status_code == 401
