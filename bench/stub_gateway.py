"""A tiny Stripe-compatible gateway stub with a fixed latency, for load runs and fault drills.

It answers just what the checkout and upsell path calls (customers, setup_intents, payment
method attach, payment_intents create/retrieve/list, refunds, charges, and transfers
create/list for bench/signup.py's transfer cost), so a load run measures
our own cost and not a fake's. Every answer waits `delay` seconds *after* the state changed,
as a slow gateway does: a payment whose answer never arrives in time has still happened.

Like localstripe it ignores idempotency keys, so a second charge for one attempt shows up
here as a second PaymentIntent (`/_bench/stats` counts them per `metadata[attempt]`).

    .venv/bin/python -m bench.stub_gateway --port 8430 --control-port 8431 --delay-ms 20

Control port (loopback): POST /delay?ms=N[&charge_ms=M], POST /refuse (stop listening on the
API port: connections are refused), POST /accept (listen again), GET /stats, GET /intents,
DELETE /data.
In a test, `StubGateway().start()` runs it on a thread of the current process.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import secrets
import threading
import time
from collections import Counter

from aiohttp import web

_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}_{next(_ids):08d}{secrets.token_hex(4)}"


def _nested(form) -> dict:
    """Stripe's form encoding (metadata[k]=v, expand[0]=x) into dicts and lists."""
    out: dict = {}
    for key, value in form.items():
        if "[" in key:
            head, rest = key.split("[", 1)
            sub = rest.rstrip("]").split("][")[0]
            if sub.isdigit() or sub == "":
                out.setdefault(head, []).append(value)
            else:
                out.setdefault(head, {})[sub] = value
        else:
            out[key] = value
    return out


class State:
    def __init__(self) -> None:
        self.customers: dict[str, dict] = {}
        self.setups: dict[str, dict] = {}
        self.methods: dict[str, dict] = {}
        self.intents: dict[str, dict] = {}
        self.charges: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self.transfers: dict[str, dict] = {}
        self.requests = 0


def _error(status: int, message: str, code: str = "resource_missing") -> web.Response:
    return web.json_response(
        {"error": {"type": "invalid_request_error", "message": message, "code": code}},
        status=status,
    )


class StubGateway:
    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.charge_delay = 0.0  # extra, on creating a PaymentIntent only: a slow charge
        self.state = State()
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._thread: threading.Thread | None = None

    # --- the API --------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        r = app.router
        r.add_get("/v1/balance", self._balance)
        r.add_post("/v1/customers", self._customer_create)
        r.add_post("/v1/setup_intents", self._setup_create)
        r.add_get("/v1/setup_intents/{id}", self._setup_get)
        r.add_post("/v1/payment_methods/{id}/attach", self._attach)
        r.add_get("/v1/payment_methods/{id}", self._method_get)
        r.add_post("/v1/payment_intents", self._intent_create)
        r.add_get("/v1/payment_intents", self._intent_list)
        r.add_get("/v1/payment_intents/{id}", self._intent_get)
        r.add_post("/v1/refunds", self._refund_create)
        r.add_get("/v1/refunds", self._refund_list)
        r.add_get("/v1/refunds/{id}", self._refund_get)
        r.add_get("/v1/charges/{id}", self._charge_get)
        r.add_post("/v1/transfers", self._transfer_create)
        r.add_get("/v1/transfers", self._transfer_list)
        return app

    async def _answer(self, body: dict, extra: float = 0.0) -> web.Response:
        self.state.requests += 1
        if self.delay + extra:
            await asyncio.sleep(self.delay + extra)
        return web.json_response(body)

    async def _balance(self, request):
        return await self._answer({"object": "balance", "available": [], "pending": []})

    async def _method_get(self, request):
        # Any card the stub is asked about is a test card expiring in December 2034
        # (subscriptions read it for expiry reminders).
        return await self._answer(
            {
                "id": request.match_info["id"],
                "object": "payment_method",
                "type": "card",
                "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2034},
            }
        )

    async def _customer_create(self, request):
        form = _nested(await request.post())
        cus = {"id": _id("cus"), "object": "customer", "email": form.get("email", "")}
        self.state.customers[cus["id"]] = cus
        return await self._answer(cus)

    async def _setup_create(self, request):
        form = _nested(await request.post())
        sid = _id("seti")
        seti = {
            "id": sid,
            "object": "setup_intent",
            "client_secret": f"{sid}_secret_x",
            "customer": form.get("customer"),
            "status": "requires_payment_method",
            "payment_method": None,
            "usage": form.get("usage", "off_session"),
        }
        self.state.setups[sid] = seti
        return await self._answer(seti)

    async def _setup_get(self, request):
        seti = self.state.setups.get(request.match_info["id"])
        if seti is None:
            return _error(404, "No such setup_intent")
        if seti["payment_method"] is None:
            # The buyer's browser confirmed it with Stripe.js (confirmCardSetup): a card exists.
            # As at Stripe, a succeeded setup's card is attached to the setup's customer.
            pm = {
                "id": _id("pm"),
                "object": "payment_method",
                "type": "card",
                "customer": seti["customer"],
                "card": {"brand": "visa", "last4": "4242", "country": "US"},
            }
            self.state.methods[pm["id"]] = pm
            seti.update(status="succeeded", payment_method=pm["id"])
        if "payment_method" in _nested(request.query).get("expand", []):
            seti = dict(seti, payment_method=self.state.methods[seti["payment_method"]])
        return await self._answer(seti)

    async def _attach(self, request):
        form = _nested(await request.post())
        pm = self.state.methods.get(request.match_info["id"])
        if pm is None:
            return _error(404, "No such payment_method")
        pm["customer"] = form.get("customer")
        return await self._answer(pm)

    def _intent_view(self, intent: dict, expand: bool) -> dict:
        view = dict(intent)
        if expand and intent.get("latest_charge"):
            view["latest_charge"] = self.state.charges[intent["latest_charge"]]
        return view

    async def _intent_create(self, request):
        form = _nested(await request.post())
        pid, cid = _id("pi"), _id("ch")
        amount = int(form.get("amount", 0))
        intent = {
            "id": pid,
            "object": "payment_intent",
            "amount": amount,
            "currency": form.get("currency", "usd"),
            "customer": form.get("customer"),
            "payment_method": form.get("payment_method"),
            "status": "succeeded",
            "metadata": form.get("metadata", {}),
            "client_secret": f"{pid}_secret_x",
            "created": int(time.time()),
            "latest_charge": cid,
            "last_payment_error": None,
        }
        self.state.charges[cid] = {
            "id": cid,
            "object": "charge",
            "amount": amount,
            "amount_refunded": 0,
            "payment_intent": pid,
            "currency": intent["currency"],
        }
        self.state.intents[pid] = intent
        return await self._answer(intent, self.charge_delay)

    async def _intent_get(self, request):
        intent = self.state.intents.get(request.match_info["id"])
        if intent is None:
            return _error(404, "No such payment_intent")
        expand = "latest_charge" in _nested(request.query).get("expand", [])
        return await self._answer(self._intent_view(intent, expand))

    def _page(self, items: list[dict], query: dict, url: str) -> dict:
        limit = int(query.get("limit", 10))
        after = query.get("starting_after")
        if after:
            ids = [i["id"] for i in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        return {"object": "list", "url": url, "data": items[:limit], "has_more": len(items) > limit}

    async def _intent_list(self, request):
        query = _nested(request.query)
        expand = "data.latest_charge" in query.get("expand", [])
        newest_first = sorted(self.state.intents.values(), key=lambda i: i["id"], reverse=True)
        page = self._page(
            [self._intent_view(i, expand) for i in newest_first], query, "/v1/payment_intents"
        )
        return await self._answer(page)

    async def _refund_create(self, request):
        form = _nested(await request.post())
        intent = self.state.intents.get(form.get("payment_intent", ""))
        if intent is None:
            return _error(400, "No such payment_intent")
        charge = self.state.charges[intent["latest_charge"]]
        amount = int(form.get("amount") or charge["amount"] - charge["amount_refunded"])
        charge["amount_refunded"] += amount
        refund = {
            "id": _id("re"),
            "object": "refund",
            "amount": amount,
            "currency": intent["currency"],
            "status": "succeeded",
            "payment_intent": intent["id"],
            "charge": charge["id"],
            "metadata": form.get("metadata", {}),
            "created": int(time.time()),
        }
        self.state.refunds[refund["id"]] = refund
        return await self._answer(refund)

    async def _refund_list(self, request):
        query = _nested(request.query)
        items = [
            r
            for r in self.state.refunds.values()
            if r["payment_intent"] == query.get("payment_intent")
        ]
        return await self._answer(self._page(items, query, "/v1/refunds"))

    async def _refund_get(self, request):
        refund = self.state.refunds.get(request.match_info["id"])
        return await self._answer(refund) if refund else _error(404, "No such refund")

    async def _charge_get(self, request):
        charge = self.state.charges.get(request.match_info["id"])
        return await self._answer(charge) if charge else _error(404, "No such charge")

    async def _transfer_create(self, request):
        form = _nested(await request.post())
        transfer = {
            "id": _id("tr"),
            "object": "transfer",
            "amount": int(form.get("amount", 0)),
            "amount_reversed": 0,
            "currency": form.get("currency", "usd"),
            "destination": form.get("destination", ""),
            "source_transaction": form.get("source_transaction"),
            "transfer_group": form.get("transfer_group", ""),
            "metadata": form.get("metadata", {}),
            "created": int(time.time()),
        }
        self.state.transfers[transfer["id"]] = transfer
        return await self._answer(transfer)

    async def _transfer_list(self, request):
        query = _nested(request.query)
        group = query.get("transfer_group")
        items = [t for t in self.state.transfers.values() if group in (None, t["transfer_group"])]
        return await self._answer(self._page(items, query, "/v1/transfers"))

    # --- what the drills read ---------------------------------------------------------------
    def stats(self) -> dict:
        per_attempt = Counter(
            i["metadata"].get("attempt", "")
            for i in self.state.intents.values()
            if i["status"] == "succeeded"
        )
        per_attempt.pop("", None)
        return {
            "requests": self.state.requests,
            "payment_intents": len(self.state.intents),
            "succeeded_attempt_keys": len(per_attempt),
            "attempt_keys_charged_twice": sum(1 for n in per_attempt.values() if n > 1),
            "delay_ms": round(self.delay * 1000),
            "listening": self._site is not None,
        }

    # --- running it on a thread (tests, in-process drills) ------------------------------------
    def start(self, port: int = 0) -> StubGateway:
        started = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._runner = web.AppRunner(self.app(), access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            self._loop.run_until_complete(self._listen(port))
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name="stub-gateway")
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("stub gateway did not start")
        return self

    async def _listen(self, port: int) -> None:
        self._site = web.TCPSite(
            self._runner, "127.0.0.1", port or self.port or 0, reuse_address=True
        )
        await self._site.start()
        self.port = self._site._server.sockets[0].getsockname()[1]

    async def _unlisten(self) -> None:
        if self._site is not None:
            await self._site.stop()
            self._site = None
        # Kept-alive connections would keep working: drop them, as a dead gateway does.
        server = self._runner.server if self._runner is not None else None
        for handler in list(getattr(server, "connections", []) or []):
            handler.force_close()

    def _call(self, coro) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def refuse(self) -> None:
        """Stop listening: new connections are refused (ECONNREFUSED) until `accept()`."""
        self._call(self._unlisten())

    def accept(self) -> None:
        self._call(self._listen(self.port))

    def stop(self) -> None:
        if self._loop is not None:
            self._call(self._runner.cleanup())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _control_app(stub: StubGateway) -> web.Application:
    async def delay(request):
        stub.delay = float(request.query.get("ms", "0")) / 1000
        stub.charge_delay = float(request.query.get("charge_ms", "0")) / 1000
        return web.json_response(stub.stats())

    async def refuse(request):
        await stub._unlisten()
        return web.json_response(stub.stats())

    async def accept(request):
        await stub._listen(stub.port)
        return web.json_response(stub.stats())

    async def stats(request):
        return web.json_response(stub.stats())

    async def intents(request):
        return web.json_response(
            [
                {
                    "id": i["id"],
                    "amount": i["amount"],
                    "status": i["status"],
                    "metadata": i["metadata"],
                }
                for i in stub.state.intents.values()
            ]
        )

    async def clear(request):
        stub.state = State()
        return web.json_response(stub.stats())

    app = web.Application()
    app.router.add_post("/delay", delay)
    app.router.add_post("/refuse", refuse)
    app.router.add_post("/accept", accept)
    app.router.add_get("/stats", stats)
    app.router.add_get("/intents", intents)
    app.router.add_delete("/data", clear)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=20)
    args = parser.parse_args()
    stub = StubGateway(delay=args.delay_ms / 1000)
    stub.port = args.port

    async def serve() -> None:
        stub._loop = asyncio.get_running_loop()
        stub._runner = web.AppRunner(stub.app(), access_log=None)
        await stub._runner.setup()
        await stub._listen(args.port)
        control = web.AppRunner(_control_app(stub), access_log=None)
        await control.setup()
        await web.TCPSite(control, "127.0.0.1", args.control_port).start()
        print(
            f"stub gateway on 127.0.0.1:{args.port} (control {args.control_port}), "
            f"delay {args.delay_ms} ms",
            flush=True,
        )
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
