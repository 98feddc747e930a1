"""Payouts through Connect (payments.connect): one connected account per store, onboarded
through a fresh Account Link per click, kept current from `account.updated` (routed by account
id, signature verified, the account re-read), shown in the admin, and a store whose account
cannot take charges says "not accepting payments yet" instead of failing at pay."""

from __future__ import annotations

import html
import re
import time
import urllib.error
import urllib.request

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django_tenants.utils import tenant_context

from payments.connect import payments_block_reason
from payments.models import PayoutAccount
from tenants.models import Creator
from tests.payments.helpers import sdk, signed

pytestmark = pytest.mark.gateway


def _owner_client(host: str) -> Client:
    client = Client(HTTP_HOST=host)
    client.force_login(get_user_model().objects.get(username="owner"))
    return client


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _complete_onboarding(link: str) -> str:
    """Press the local onboarding page's one button; returns the return_url it redirects to."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        opener.open(urllib.request.Request(link, data=b"", method="POST"), timeout=5)
    except urllib.error.HTTPError as exc:
        assert exc.code == 302
        return exc.headers["Location"]
    raise AssertionError("the onboarding page did not redirect")


def _connect(host: str) -> str:
    response = _owner_client(host).post("/admin/payouts/connect/")
    assert response.status_code == 200, response.content
    return _continue_url(response)


def _continue_url(response) -> str:
    """The page a POST answers instead of a cross-origin redirect (CSP form-action 'self')."""
    match = re.search(r'id="continue" href="([^"]+)"', response.content.decode())
    return html.unescape(match.group(1))


def _account_event(account_ref: str, *, charges_enabled: bool, event_id: str | None = None):
    return {
        "id": event_id or f"evt_{time.monotonic_ns()}",
        "object": "event",
        "type": "account.updated",
        "created": int(time.time()),
        "account": account_ref,
        "data": {
            "object": {"id": account_ref, "object": "account", "charges_enabled": charges_enabled}
        },
    }


def _deliver(evt: dict, *, secret: str | None = None):
    body, header = signed(evt, secret=secret)
    before = connection.tenant
    try:
        return Client(HTTP_HOST="localhost").post(
            "/webhooks/stripe-connect/",
            data=body,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=header,
        )
    finally:
        connection.set_tenant(before)  # the platform's domain left the connection in public


def test_each_click_on_connect_payouts_makes_a_fresh_link_for_one_account(tenant):
    first, second = _connect("t1.localhost"), _connect("t1.localhost")
    assert first != second
    assert "/connect/onboarding/" in first and "/connect/onboarding/" in second
    (account,) = PayoutAccount.objects.all()
    assert account.account_ref.startswith("acct_")
    assert [a.id for a in sdk().v1.accounts.list().data] == [account.account_ref]
    assert Creator.objects.get(slug="t1").payout_account_ref == account.account_ref
    assert not account.charges_enabled


def test_returning_from_onboarding_records_the_account_state_and_ticks_the_checklist(tenant):
    link = _connect("t1.localhost")
    back = _complete_onboarding(link)
    assert back == "http://t1.localhost/admin/payouts/return/"
    owner = _owner_client("t1.localhost")
    response = owner.get("/admin/payouts/return/")
    assert response.status_code == 302 and response["Location"] == "/admin/getting-started/"
    account = PayoutAccount.objects.get()
    assert account.charges_enabled and account.payouts_enabled and account.details_submitted
    assert account.requirements_due == [] and account.synced_at is not None
    page = owner.get("/admin/getting-started/").content.decode()
    assert 'data-item="connect_payouts" data-done="true"' in page
    admin_page = owner.get("/admin/payments/payoutaccount/").content.decode()
    assert account.account_ref in admin_page and "active" in admin_page


def test_account_updated_reaches_the_right_store_and_is_re_read_from_the_gateway(
    tenant, other_tenant
):
    link_one = _connect("t1.localhost")
    with tenant_context(other_tenant):
        link_two = _connect("t2.localhost")
        account_two = PayoutAccount.objects.get().account_ref
    connection.set_tenant(tenant)
    account_one = PayoutAccount.objects.get().account_ref
    _complete_onboarding(link_two)  # only t2's account is onboarded at the gateway

    # The payload says "charges disabled"; the gateway says enabled: the gateway wins.
    response = _deliver(_account_event(account_two, charges_enabled=False))
    assert response.status_code == 200 and response.json()["store"] is True
    with tenant_context(other_tenant):
        assert PayoutAccount.objects.get().charges_enabled
    connection.set_tenant(tenant)
    one = PayoutAccount.objects.get(account_ref=account_one)
    assert not one.charges_enabled and one.synced_at is not None  # untouched since creation
    del link_one


def test_a_connect_event_with_a_bad_signature_changes_nothing(tenant):
    _complete_onboarding(_connect("t1.localhost"))
    account = PayoutAccount.objects.get()
    response = _deliver(
        _account_event(account.account_ref, charges_enabled=True), secret="whsec_not_ours"
    )
    assert response.status_code == 400
    assert not PayoutAccount.objects.get().charges_enabled


def test_a_connect_event_for_an_account_no_store_has_is_acknowledged_and_ignored(tenant):
    response = _deliver(_account_event("acct_nobody", charges_enabled=True))
    assert response.status_code == 200 and response.json()["store"] is False


def test_a_self_serve_store_shows_not_accepting_payments_until_its_account_can_charge(tenant):
    from tests.factories import ProductFactory

    ProductFactory(slug="course")
    tenant.payouts_required = True
    tenant.save(update_fields=["payouts_required"])  # drops the routing cache's copy too
    store = Client(HTTP_HOST="t1.localhost")
    try:
        assert payments_block_reason() == "This store is not accepting payments yet."
        for path in ("/", "/p/course/", "/checkout/course/"):
            assert b"not accepting payments yet" in store.get(path).content, path
        start = store.post("/checkout/course/start", {"email": "b@example.com", "country": "US"})
        assert start.status_code == 400
        assert "not accepting payments yet" in start.json()["error"]

        link = _connect("t1.localhost")
        assert payments_block_reason() is not None  # made, not onboarded: still refused
        _complete_onboarding(link)
        _owner_client("t1.localhost").get("/admin/payouts/return/")
        assert payments_block_reason() is None
        page = store.get("/checkout/course/")
        assert b"not accepting payments yet" not in page.content and b"<form" in page.content
    finally:
        tenant.payouts_required = False
        tenant.save(update_fields=["payouts_required"])


def test_a_crash_after_the_account_is_made_gets_the_same_account_on_the_next_click(
    tenant, monkeypatch
):
    from payments import connect

    calls = []
    real = connect._record

    def crash_once(account, state):
        calls.append(state.account_ref)
        if len(calls) == 1:
            raise RuntimeError("worker killed after the gateway made the account")
        return real(account, state)

    monkeypatch.setattr(connect, "_record", crash_once)
    with pytest.raises(RuntimeError):
        connect.payout_account_connect(
            refresh_url="http://t1.localhost/r", return_url="http://t1.localhost/b"
        )
    assert PayoutAccount.objects.get().account_ref == ""  # key committed, result not recorded
    connect.payout_account_connect(
        refresh_url="http://t1.localhost/r", return_url="http://t1.localhost/b"
    )
    assert calls[0] == calls[1]  # the idempotency key brought the same account back
    assert [a.id for a in sdk().v1.accounts.list().data] == [calls[0]]
    assert PayoutAccount.objects.get().account_ref == calls[0]
