"""The Stripe Connect subset the platform calls, added to localstripe's aiohttp app.

localstripe has no Connect API. `install(app)` adds, stateful in localstripe's own `store`
(so `DELETE /_config/data` clears it and `--state` persists it):

- `POST /v1/accounts`, `GET /v1/accounts/{id}`, `POST /v1/accounts/{id}`, `GET /v1/accounts`:
  Express accounts with requested capabilities, `charges_enabled`, `payouts_enabled`,
  `details_submitted` and `requirements` (`currently_due`, `disabled_reason`, …).
- `POST /v1/account_links`: a single-use link, valid five minutes, to a page on this server
  (`/connect/onboarding/{token}`) whose one button completes onboarding, sends a signed
  `account.updated` event (with an `account` field, as Connect events have) to the registered
  webhooks, and redirects to `return_url`; a used or expired link redirects to `refresh_url`.
- `POST /v1/transfers`, `GET /v1/transfers/{id}`, `GET /v1/transfers` (filters `destination`,
  `transfer_group`, `source_transaction`): `source_transaction` must be a charge of this server,
  and the transfers from one charge cannot add up to more than it; the destination needs the
  `transfers` capability active.
- `POST /v1/transfers/{id}/reversals`, `GET /v1/transfers/{id}/reversals`.
- `GET /v1/balance` with a `Stripe-Account` header: that account's balance (what it was
  transferred less what was reversed). Any other request with the header is refused (400):
  direct charges on connected accounts are not part of the subset.
- `Idempotency-Key` is honoured on every POST above (unlike localstripe's own resources): the
  same key with the same parameters answers the first response again; with other parameters it
  is a 400 `idempotency_error`, as at Stripe.

docs/localstripe-connect.md lists the subset and where it differs from Stripe.
"""

from __future__ import annotations

import hashlib
import html
import json
import secrets
import time

from aiohttp import web
from localstripe.errors import UserError
from localstripe.resources import Charge, Event, StripeObject, store, try_convert_to_int
from localstripe.server import get_post_data, json_response, unflatten_data
from localstripe.webhooks import schedule_webhook

LINK_SECONDS = 300
CAPABILITIES = ("card_payments", "transfers")
ONBOARDING_DUE = [
    "business_profile.url",
    "external_account",
    "individual.dob.day",
    "individual.first_name",
    "individual.last_name",
    "tos_acceptance.date",
]


class Account(StripeObject):
    object = "account"
    _id_prefix = "acct_"

    def __init__(
        self,
        type="express",
        email=None,
        country="US",
        capabilities=None,
        metadata=None,
        business_type=None,
        default_currency=None,
        **kwargs,
    ):
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
        try:
            assert type in ("express", "standard", "custom")
            assert email is None or isinstance(email, str)
            assert isinstance(country, str) and len(country) == 2
            assert capabilities is None or isinstance(capabilities, dict)
            assert metadata is None or isinstance(metadata, dict)
        except AssertionError:
            raise UserError(400, "Bad request") from None
        requested = {}
        for name, wanted in (capabilities or {}).items():
            if name not in CAPABILITIES:
                raise UserError(400, f"Unknown capability {name}")
            flag = wanted.get("requested") if isinstance(wanted, dict) else None
            if str(flag).lower() == "true":
                requested[name] = "inactive"
        super().__init__()
        self.type = type
        self.email = email
        self.country = country.upper()
        self.default_currency = default_currency or "usd"
        self.business_type = business_type
        self.capabilities = requested
        self.metadata = metadata or {}
        self.charges_enabled = False
        self.payouts_enabled = False
        self.details_submitted = False
        self.requirements = {
            "currently_due": list(ONBOARDING_DUE),
            "eventually_due": list(ONBOARDING_DUE),
            "past_due": list(ONBOARDING_DUE),
            "pending_verification": [],
            "disabled_reason": "requirements.past_due",
            "current_deadline": None,
        }

    def _update(self, **data):
        allowed = {"email", "metadata", "business_type"}
        if set(data) - allowed:
            raise UserError(400, "Only email, metadata and business_type can be updated here")
        super()._update(**data)

    def _onboard(self):
        self.details_submitted = True
        self.capabilities = {name: "active" for name in (self.capabilities or {})}
        self.charges_enabled = self.capabilities.get("card_payments") == "active"
        self.payouts_enabled = True
        self.requirements = {
            "currently_due": [],
            "eventually_due": [],
            "past_due": [],
            "pending_verification": [],
            "disabled_reason": None,
            "current_deadline": None,
        }
        store["account:" + self.id] = self  # persist (store writes on set)
        event = Event("account.updated", self)
        event.account = self.id  # Connect events name the connected account
        store["event:" + event.id] = event
        schedule_webhook(event)


class Transfer(StripeObject):
    object = "transfer"
    _id_prefix = "tr_"

    def __init__(
        self,
        amount=None,
        currency=None,
        destination=None,
        source_transaction=None,
        transfer_group=None,
        metadata=None,
        description=None,
        **kwargs,
    ):
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
        amount = try_convert_to_int(amount)
        try:
            assert isinstance(amount, int) and amount > 0
            assert isinstance(currency, str) and len(currency) == 3
            assert isinstance(destination, str) and destination
            assert source_transaction is None or isinstance(source_transaction, str)
            assert transfer_group is None or isinstance(transfer_group, str)
            assert metadata is None or isinstance(metadata, dict)
        except AssertionError:
            raise UserError(400, "Bad request") from None
        account = store.get("account:" + destination)
        if account is None:
            raise UserError(400, f"No such destination: '{destination}'")
        if (account.capabilities or {}).get("transfers") != "active":
            raise UserError(
                400,
                "Your destination account needs to have at least one of the "
                "following capabilities enabled: transfers, crypto_transfers, "
                "legacy_payments",
            )
        if source_transaction is not None:
            charge = Charge._api_retrieve(source_transaction)  # 404 if unknown
            if charge.currency.lower() != currency.lower():
                raise UserError(
                    400,
                    "The currency of source_transaction's balance transaction "
                    "must be the same as the transfer currency",
                )
            already = sum(
                t.amount
                for key, t in store.items()
                if key.startswith("transfer:") and t.source_transaction == source_transaction
            )
            if already + amount > charge.amount:
                raise UserError(
                    400,
                    "Insufficient funds in the source transaction: "
                    f"{charge.amount - already} left of {charge.amount}",
                )
        super().__init__()
        self.amount = amount
        self.currency = currency.lower()
        self.destination = destination
        self.source_transaction = source_transaction
        self.transfer_group = transfer_group
        self.metadata = metadata or {}
        self.description = description
        self.amount_reversed = 0
        self.reversed = False
        self._reversals = []
        _balance_add(destination, self.currency, amount)

    @property
    def reversals(self):
        return {
            "object": "list",
            "data": [r._export() for r in self._reversals],
            "has_more": False,
            "url": f"/v1/transfers/{self.id}/reversals",
            "total_count": len(self._reversals),
        }


class TransferReversal(StripeObject):
    object = "transfer_reversal"
    _id_prefix = "trr_"

    def __init__(
        self,
        transfer=None,
        amount=None,
        metadata=None,
        description=None,
        refund_application_fee=None,
        **kwargs,
    ):
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
        parent = store.get("transfer:" + str(transfer))
        if parent is None:
            raise UserError(404, "Not Found")
        left = parent.amount - parent.amount_reversed
        amount = left if amount is None else try_convert_to_int(amount)
        if not isinstance(amount, int) or amount <= 0:
            raise UserError(400, "Bad request")
        if amount > left:
            raise UserError(400, f"The transfer {parent.id} has only {left} left to reverse")
        super().__init__()
        self.transfer = parent.id
        self.amount = amount
        self.currency = parent.currency
        self.metadata = metadata or {}
        self.destination_payment_refund = None
        parent.amount_reversed += amount
        parent.reversed = parent.amount_reversed == parent.amount
        parent._reversals.append(self)
        store["transfer:" + parent.id] = parent
        _balance_add(parent.destination, parent.currency, -amount)


def _balance_add(account_id: str, currency: str, amount: int) -> None:
    key = "connect_balance:" + account_id
    balance = dict(store.get(key) or {})
    balance[currency] = balance.get(currency, 0) + amount
    store[key] = balance


# --- idempotency --------------------------------------------------------------------------


def _with_idempotency(request, params: dict, make):
    """Answer a POST once per Idempotency-Key: a repeat with the same parameters gets the
    first answer; with other parameters a 400, as at Stripe."""
    key = request.headers.get("Idempotency-Key")
    if not key:
        return make()
    digest = hashlib.sha256(
        (request.path + json.dumps(params, sort_keys=True, default=str)).encode()
    ).hexdigest()
    slot = "idempotency:" + hashlib.sha256(key.encode()).hexdigest()
    seen = store.get(slot)
    if seen is not None:
        if seen["digest"] != digest:
            raise UserError(
                400,
                "Keys for idempotent requests can only be used with the same "
                "parameters they were first used with.",
                {"type": "idempotency_error"},
            )
        return seen["response"]
    response = make()
    store[slot] = {"digest": digest, "response": response}
    return response


# --- handlers -----------------------------------------------------------------------------


def _strip(data: dict) -> tuple[dict, list | None]:
    data = dict(data or {})
    expand = data.pop("expand", None)
    return data, expand


async def account_create(request):
    data, expand = _strip(await get_post_data(request))
    return json_response(
        _with_idempotency(request, data, lambda: Account(**data)._export(expand=expand))
    )


def account_retrieve(request):
    return json_response(Account._api_retrieve(request.match_info["id"])._export())


async def account_update(request):
    data, expand = _strip(await get_post_data(request))
    if not data:
        raise UserError(400, "Bad request")
    account = Account._api_update(request.match_info["id"], **data)
    store["account:" + account.id] = account
    return json_response(account._export(expand=expand))


def account_list(request):
    items = [v._export() for k, v in store.items() if k.startswith("account:")]
    return json_response(
        {"object": "list", "data": items, "has_more": False, "url": "/v1/accounts"}
    )


async def account_link_create(request):
    data, _ = _strip(await get_post_data(request))
    account_id = data.get("account")
    if not isinstance(account_id, str) or store.get("account:" + account_id) is None:
        raise UserError(400, f"No such account: '{account_id}'")
    for field in ("refresh_url", "return_url"):
        if not str(data.get(field, "")).startswith(("http://", "https://")):
            raise UserError(400, f"{field} must be an http(s) URL")
    if data.get("type") not in ("account_onboarding", "account_update"):
        raise UserError(400, "type must be account_onboarding or account_update")
    token = secrets.token_urlsafe(18)
    now = int(time.time())
    store["account_link:" + token] = {
        "account": account_id,
        "refresh_url": data["refresh_url"],
        "return_url": data["return_url"],
        "expires_at": now + LINK_SECONDS,
        "used": False,
    }
    host = request.headers.get("Host") or f"127.0.0.1:{request.url.port}"
    return json_response(
        {
            "object": "account_link",
            "created": now,
            "expires_at": now + LINK_SECONDS,
            "url": f"http://{host}/connect/onboarding/{token}",
        }
    )


def _link(request) -> tuple[str, dict]:
    token = request.match_info["token"]
    link = store.get("account_link:" + token)
    if link is None:
        raise UserError(404, "This onboarding link does not exist")
    return token, link


def onboarding_page(request):
    _token, link = _link(request)
    if link["used"] or link["expires_at"] < time.time():
        raise web.HTTPFound(link["refresh_url"])
    account = html.escape(link["account"])
    body = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Set up payouts (local test onboarding)</title></head><body><main>
<h1>Set up payouts</h1>
<p>Local test onboarding for <code>{account}</code>. At Stripe this is where the creator gives
their business details and bank account.</p>
<form method="post" action=""><button type="submit">Complete onboarding</button></form>
</main></body></html>"""
    return web.Response(text=body, content_type="text/html")


async def onboarding_complete(request):
    token, link = _link(request)
    if link["used"] or link["expires_at"] < time.time():
        raise web.HTTPFound(link["refresh_url"])
    store["account_link:" + token] = {**link, "used": True}
    store["account:" + link["account"]]._onboard()
    raise web.HTTPFound(link["return_url"])


async def transfer_create(request):
    data, expand = _strip(await get_post_data(request))

    def make():
        return Transfer(**data)._export(expand=expand)

    return json_response(_with_idempotency(request, data, make))


def transfer_retrieve(request):
    return json_response(Transfer._api_retrieve(request.match_info["id"])._export())


def transfer_list(request):
    query = unflatten_data(request.query)
    filters = {
        k: query[k] for k in ("destination", "transfer_group", "source_transaction") if k in query
    }
    limit = try_convert_to_int(query.get("limit", 100))
    items = [
        v
        for k, v in store.items()
        if k.startswith("transfer:") and all(getattr(v, f) == x for f, x in filters.items())
    ]
    items.sort(key=lambda t: t.created, reverse=True)
    return json_response(
        {
            "object": "list",
            "data": [t._export() for t in items[:limit]],
            "has_more": len(items) > limit,
            "url": "/v1/transfers",
        }
    )


async def reversal_create(request):
    data, expand = _strip(await get_post_data(request))
    transfer_id = request.match_info["id"]

    def make():
        return TransferReversal(transfer=transfer_id, **data)._export(expand=expand)

    return json_response(_with_idempotency(request, data, make))


def reversal_list(request):
    transfer = Transfer._api_retrieve(request.match_info["id"])
    return json_response(transfer.reversals)


def connected_balance(account_id: str):
    if store.get("account:" + account_id) is None:
        raise UserError(403, f"The provided key does not have access to account '{account_id}'")
    balance = store.get("connect_balance:" + account_id) or {}
    available = [
        {"amount": amount, "currency": currency, "source_types": {"card": amount}}
        for currency, amount in sorted(balance.items())
    ]
    return json_response(
        {
            "object": "balance",
            "livemode": False,
            "available": available,
            "pending": [
                {"amount": 0, "currency": c, "source_types": {"card": 0}} for c in sorted(balance)
            ],
        }
    )


# --- wiring -------------------------------------------------------------------------------


@web.middleware
async def onboarding_without_key(request, handler):
    """The onboarding page is opened by a browser, which has no API key: skip the auth check
    that localstripe applies to every other path (this runs before it)."""
    if request.path.startswith("/connect/onboarding/"):
        return await request.match_info.handler(request)
    return await handler(request)


@web.middleware
async def stripe_account_header(request, handler):
    """`Stripe-Account`: the connected account's balance; nothing else in this subset."""
    account = request.headers.get("Stripe-Account")
    if not account:
        return await handler(request)
    if request.method == "GET" and request.path == "/v1/balance":
        return connected_balance(account)
    raise UserError(
        400, "localstripe-connect: the Stripe-Account header is only supported on GET /v1/balance"
    )


def install(app: web.Application) -> None:
    """Add the Connect routes and middlewares to localstripe's app (before it starts)."""
    # After localstripe's error middleware (so UserError becomes a JSON answer), before its auth.
    app.middlewares.insert(1, onboarding_without_key)
    app.middlewares.append(stripe_account_header)
    router = app.router
    router.add_get("/connect/onboarding/{token}", onboarding_page)
    router.add_post("/connect/onboarding/{token}", onboarding_complete)
    router.add_post("/v1/accounts", account_create)
    router.add_get("/v1/accounts", account_list)
    router.add_get("/v1/accounts/{id}", account_retrieve)
    router.add_post("/v1/accounts/{id}", account_update)
    router.add_post("/v1/account_links", account_link_create)
    router.add_post("/v1/transfers", transfer_create)
    router.add_get("/v1/transfers", transfer_list)
    router.add_get("/v1/transfers/{id}", transfer_retrieve)
    router.add_post("/v1/transfers/{id}/reversals", reversal_create)
    router.add_get("/v1/transfers/{id}/reversals", reversal_list)


def onboarding_link_complete(link: str) -> None:
    """Press the one button of a local onboarding page (what the demo's seeding does instead
    of a person): POST the link and stop at its redirect to the store's admin, which need not
    be up yet."""
    import urllib.error
    import urllib.request

    class _Stay(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        urllib.request.build_opener(_Stay).open(
            urllib.request.Request(link, data=b"", method="POST"), timeout=10
        )
    except urllib.error.HTTPError as exc:
        if exc.code != 302:
            raise
