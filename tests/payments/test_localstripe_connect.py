"""The Connect subset added to the local Stripe server (devtools/localstripe_connect.py), driven
with the real stripe SDK over HTTP, as the platform and `bin/run` use it."""

from __future__ import annotations

import http.server
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest
import stripe

from devtools.services import free_port

pytestmark = pytest.mark.gateway

SECRET = "whsec_connect_subset_test"


@pytest.fixture
def sdk(stripe_api_base) -> stripe.StripeClient:
    return stripe.StripeClient(
        "sk_test_local", base_addresses={"api": stripe_api_base}, max_network_retries=0
    )


def _account(sdk) -> stripe.Account:
    return sdk.v1.accounts.create(
        params={
            "type": "express",
            "email": "creator@example.com",
            "country": "US",
            "capabilities": {
                "card_payments": {"requested": True},
                "transfers": {"requested": True},
            },
        }
    )


def _onboard(sdk, account_id: str) -> str:
    """Open the account link's page and press its one button; returns where it redirected."""
    link = sdk.v1.account_links.create(
        params={
            "account": account_id,
            "type": "account_onboarding",
            "refresh_url": "http://creator.localhost/refresh",
            "return_url": "http://creator.localhost/back",
        }
    )
    page = urllib.request.urlopen(link.url, timeout=5).read().decode()
    assert "Complete onboarding" in page
    return _post_no_follow(link.url)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _post_no_follow(url: str) -> str:
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        opener.open(urllib.request.Request(url, data=b"", method="POST"), timeout=5)
    except urllib.error.HTTPError as exc:
        assert exc.code == 302
        return exc.headers["Location"]
    raise AssertionError("expected a redirect")


def _charge(sdk, amount: int = 5000) -> str:
    intent = sdk.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )
    latest = intent.latest_charge if hasattr(intent, "latest_charge") else None
    if latest is None or not isinstance(latest, str):
        latest = latest["id"] if latest is not None else intent.charges.data[0].id
    return latest


def _balance(sdk, account_id: str) -> int:
    balance = sdk.v1.balance.retrieve(options={"stripe_account": account_id})
    return sum(item.amount for item in balance.available if item.currency == "usd")


def test_an_express_account_starts_restricted_with_its_requirements_due(sdk):
    account = _account(sdk)
    assert account.id.startswith("acct_") and account.type == "express"
    assert not account.charges_enabled and not account.payouts_enabled
    assert not account.details_submitted
    assert account.requirements.currently_due
    assert account.requirements.disabled_reason == "requirements.past_due"
    assert sdk.v1.accounts.retrieve(account.id).id == account.id
    assert account.id in [a.id for a in sdk.v1.accounts.list().data]


def test_the_onboarding_link_completes_with_one_click_and_returns_once(sdk):
    account = _account(sdk)
    assert _onboard(sdk, account.id) == "http://creator.localhost/back"
    fresh = sdk.v1.accounts.retrieve(account.id)
    assert fresh.charges_enabled and fresh.payouts_enabled and fresh.details_submitted
    assert fresh.requirements.currently_due == [] and fresh.requirements.disabled_reason is None
    assert fresh.capabilities["transfers"] == "active"


def test_a_used_onboarding_link_sends_the_creator_to_refresh_url(sdk):
    account = _account(sdk)
    link = sdk.v1.account_links.create(
        params={
            "account": account.id,
            "type": "account_onboarding",
            "refresh_url": "http://creator.localhost/refresh",
            "return_url": "http://creator.localhost/back",
        }
    )
    assert _post_no_follow(link.url) == "http://creator.localhost/back"
    assert _post_no_follow(link.url) == "http://creator.localhost/refresh"


def test_completing_onboarding_sends_a_signed_account_updated_event_naming_the_account(
    sdk, stripe_api_base
):
    received: list[tuple[bytes, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, self.headers["Stripe-Signature"]))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    port = free_port()
    server = http.server.HTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"connect-test-{uuid.uuid4().hex[:8]}"
    data = f"url=http://127.0.0.1:{port}/&secret={SECRET}&events[]=account.updated".encode()
    urllib.request.urlopen(
        urllib.request.Request(
            f"{stripe_api_base}/_config/webhooks/{hook}", data=data, method="POST"
        ),
        timeout=5,
    ).close()
    try:
        account = _account(sdk)
        _onboard(sdk, account.id)

        # Events of earlier tests may still be on their way (the server sends after a second):
        # keep only this account's.
        def mine():
            events = [stripe.Webhook.construct_event(body, sig, SECRET) for body, sig in received]
            return [e for e in events if e.data.object.id == account.id]

        deadline = time.monotonic() + 10
        while not mine() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # a second delivery would have come by now
        (event,) = mine()
        assert event.type == "account.updated"
        assert event["account"] == account.id
        assert event.data.object.charges_enabled
    finally:
        # Point the registration at nothing that listens for account events any more.
        data = f"url=http://127.0.0.1:9/&secret={SECRET}&events[]=none".encode()
        urllib.request.urlopen(
            urllib.request.Request(
                f"{stripe_api_base}/_config/webhooks/{hook}", data=data, method="POST"
            ),
            timeout=5,
        ).close()
        server.shutdown()
        server.server_close()


def test_a_transfer_with_the_same_idempotency_key_is_made_once(sdk):
    account = _account(sdk)
    _onboard(sdk, account.id)
    charge = _charge(sdk, 5000)
    params = {
        "amount": 4200,
        "currency": "usd",
        "destination": account.id,
        "source_transaction": charge,
        "transfer_group": "order-1",
    }
    first = sdk.v1.transfers.create(params=params, options={"idempotency_key": "transfer-1"})
    again = sdk.v1.transfers.create(params=params, options={"idempotency_key": "transfer-1"})
    assert again.id == first.id
    assert first.amount == 4200 and first.destination == account.id
    assert first.source_transaction == charge and first.transfer_group == "order-1"
    listed = sdk.v1.transfers.list(params={"destination": account.id}).data
    assert [t.id for t in listed] == [first.id]
    assert sdk.v1.transfers.retrieve(first.id).amount == 4200
    assert _balance(sdk, account.id) == 4200
    with pytest.raises(stripe.InvalidRequestError, match="same parameters"):
        sdk.v1.transfers.create(
            params={**params, "amount": 100}, options={"idempotency_key": "transfer-1"}
        )


def test_transfers_from_one_charge_cannot_exceed_it_or_reach_an_account_not_onboarded(sdk):
    ready, pending = _account(sdk), _account(sdk)
    _onboard(sdk, ready.id)
    charge = _charge(sdk, 1000)
    sdk.v1.transfers.create(
        params={
            "amount": 700,
            "currency": "usd",
            "destination": ready.id,
            "source_transaction": charge,
        }
    )
    with pytest.raises(stripe.InvalidRequestError, match="Insufficient funds"):
        sdk.v1.transfers.create(
            params={
                "amount": 301,
                "currency": "usd",
                "destination": ready.id,
                "source_transaction": charge,
            }
        )
    with pytest.raises(stripe.InvalidRequestError, match="capabilities"):
        sdk.v1.transfers.create(
            params={"amount": 100, "currency": "usd", "destination": pending.id}
        )
    assert _balance(sdk, ready.id) == 700


def test_a_reversal_takes_back_part_of_a_transfer_and_no_more_than_is_left(sdk):
    account = _account(sdk)
    _onboard(sdk, account.id)
    transfer = sdk.v1.transfers.create(
        params={
            "amount": 3000,
            "currency": "usd",
            "destination": account.id,
            "source_transaction": _charge(sdk, 3000),
        }
    )
    reversal = sdk.v1.transfers.reversals.create(
        transfer.id, params={"amount": 1200}, options={"idempotency_key": "rev-1"}
    )
    same = sdk.v1.transfers.reversals.create(
        transfer.id, params={"amount": 1200}, options={"idempotency_key": "rev-1"}
    )
    assert same.id == reversal.id and reversal.amount == 1200
    assert _balance(sdk, account.id) == 1800
    fresh = sdk.v1.transfers.retrieve(transfer.id)
    assert fresh.amount_reversed == 1200 and not fresh.reversed
    with pytest.raises(stripe.InvalidRequestError, match="left to reverse"):
        sdk.v1.transfers.reversals.create(transfer.id, params={"amount": 1801})
    sdk.v1.transfers.reversals.create(transfer.id)  # the rest
    assert sdk.v1.transfers.retrieve(transfer.id).reversed
    assert _balance(sdk, account.id) == 0
    assert len(sdk.v1.transfers.reversals.list(transfer.id).data) == 2


def test_each_connected_account_has_its_own_balance(sdk):
    a, b = _account(sdk), _account(sdk)
    _onboard(sdk, a.id)
    _onboard(sdk, b.id)
    sdk.v1.transfers.create(
        params={
            "amount": 500,
            "currency": "usd",
            "destination": a.id,
            "source_transaction": _charge(sdk, 500),
        }
    )
    assert (_balance(sdk, a.id), _balance(sdk, b.id)) == (500, 0)


def test_other_requests_on_behalf_of_a_connected_account_are_refused_plainly(sdk):
    account = _account(sdk)
    with pytest.raises(stripe.InvalidRequestError, match="Stripe-Account"):
        sdk.v1.customers.create(
            params={"email": "x@example.com"}, options={"stripe_account": account.id}
        )
    with pytest.raises(stripe.PermissionError):
        sdk.v1.balance.retrieve(options={"stripe_account": "acct_unknown"})


def test_bad_connect_requests_get_a_400_with_a_reason(sdk):
    with pytest.raises(stripe.InvalidRequestError, match="capability"):
        sdk.v1.accounts.create(
            params={"type": "express", "capabilities": {"bogus": {"requested": True}}}
        )
    with pytest.raises(stripe.InvalidRequestError, match="No such account"):
        sdk.v1.account_links.create(
            params={
                "account": "acct_nope",
                "type": "account_onboarding",
                "refresh_url": "http://x/r",
                "return_url": "http://x/b",
            }
        )
    with pytest.raises(stripe.InvalidRequestError, match="destination"):
        sdk.v1.transfers.create(
            params={"amount": 100, "currency": "usd", "destination": "acct_nope"}
        )
