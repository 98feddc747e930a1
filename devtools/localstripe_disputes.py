"""Card disputes for localstripe (it has none), added to its aiohttp app like the Connect subset.

Stateful in localstripe's own `store`; each change sends the signed `charge.dispute.*` events
Stripe sends, to the webhooks registered with `POST /_config/webhooks/{id}`:

- `POST /_config/disputes` (`charge` ch_… or `payment_intent` pi_…, optional `amount`,
  `reason`, `evidence_days`): the buyer's bank opens a dispute. Status `needs_response`, the
  funds withdrawn at once (a negative balance transaction), evidence due in `evidence_days`
  (default 7). Events: `charge.dispute.created`, `charge.dispute.funds_withdrawn`.
- `GET /v1/disputes/{id}`, `GET /v1/disputes`: read them, as at Stripe.
- `POST /v1/disputes/{id}` with `submit=true` (evidence submitted): `under_review`,
  `charge.dispute.updated`. `POST /v1/disputes/{id}/close` (the seller accepts): `lost`,
  `charge.dispute.closed`.
- `POST /_config/disputes/{id}/decide` (`status` won or lost): the bank decides. Won gives
  the funds back (a positive balance transaction). Events: `charge.dispute.closed`, and
  `charge.dispute.funds_reinstated` when won.

docs/localstripe-connect.md lists this with the Connect subset and where it differs from Stripe.
"""

from __future__ import annotations

import time

from aiohttp import web
from localstripe.errors import UserError
from localstripe.resources import Charge, Event, StripeObject, store
from localstripe.server import get_post_data, json_response
from localstripe.webhooks import schedule_webhook

_OPEN = ("needs_response", "under_review", "warning_needs_response", "warning_under_review")


class Dispute(StripeObject):
    object = "dispute"
    _id_prefix = "dp_"

    def __init__(self, charge: Charge, amount: int, reason: str, evidence_days: int):
        super().__init__()
        self.amount = amount
        self.currency = charge.currency
        self.charge = charge.id
        self.payment_intent = charge.payment_intent
        self.reason = reason
        self.status = "needs_response"
        self.is_charge_refundable = False
        self.metadata = {}
        self.evidence = {}
        self.evidence_details = {
            "due_by": int(time.time()) + evidence_days * 86400,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        }
        self.balance_transactions = []
        self._move("needs_response", funds=-amount, events=("created", "funds_withdrawn"))

    def _move(self, status: str, *, funds: int = 0, events: tuple[str, ...]) -> None:
        self.status = status
        if funds:
            self.balance_transactions = [
                *self.balance_transactions,
                {
                    "id": "txn_" + self.id[3:] + str(len(self.balance_transactions)),
                    "object": "balance_transaction",
                    "amount": funds,
                    "currency": self.currency,
                    "reporting_category": "dispute" if funds < 0 else "dispute_reversal",
                },
            ]
        store["dispute:" + self.id] = self  # persist (store writes on set)
        for name in events:
            event = Event("charge.dispute." + name, self)
            store["event:" + event.id] = event
            schedule_webhook(event)


def _dispute(request) -> Dispute:
    found = store.get("dispute:" + request.match_info["id"])
    if found is None:
        raise UserError(404, "No such dispute: " + request.match_info["id"])
    return found


def _open_one(dispute: Dispute) -> None:
    if dispute.status not in _OPEN:
        raise UserError(400, f"This dispute is already closed ({dispute.status}).")


async def dispute_open(request):
    data = await get_post_data(request) or {}
    charge_id = data.get("charge")
    if not charge_id and data.get("payment_intent"):
        pi = store.get("payment_intent:" + str(data["payment_intent"]))
        if pi is None:
            raise UserError(404, "No such payment_intent")
        latest = pi.latest_charge
        charge_id = latest if isinstance(latest, str) else getattr(latest, "id", None)
    charge = store.get("charge:" + str(charge_id)) if charge_id else None
    if not isinstance(charge, Charge):
        raise UserError(400, "charge or payment_intent: a succeeded charge of this server")
    try:
        amount = int(data.get("amount", charge.amount))
        days = int(data.get("evidence_days", 7))
    except (TypeError, ValueError):
        raise UserError(400, "amount and evidence_days are integers") from None
    if not 0 < amount <= charge.amount:
        raise UserError(400, "amount: more than zero and at most the charge")
    reason = str(data.get("reason", "fraudulent"))
    return json_response(Dispute(charge, amount, reason, days)._export())


def dispute_retrieve(request):
    return json_response(_dispute(request)._export())


def dispute_list(request):
    items = sorted(
        (v for k, v in store.items() if k.startswith("dispute:")),
        key=lambda d: d.created,
        reverse=True,
    )
    return json_response(
        {
            "object": "list",
            "data": [d._export() for d in items[:100]],
            "has_more": len(items) > 100,
            "url": "/v1/disputes",
        }
    )


async def dispute_update(request):
    dispute = _dispute(request)
    data = await get_post_data(request) or {}
    _open_one(dispute)
    if isinstance(data.get("metadata"), dict):
        dispute.metadata = {**dispute.metadata, **data["metadata"]}
    if isinstance(data.get("evidence"), dict):
        dispute.evidence = {**dispute.evidence, **data["evidence"]}
        dispute.evidence_details = {**dispute.evidence_details, "has_evidence": True}
    submit = str(data.get("submit", "")).lower() == "true"
    if submit:
        count = dispute.evidence_details["submission_count"] + 1
        dispute.evidence_details = {**dispute.evidence_details, "submission_count": count}
    dispute._move("under_review" if submit else dispute.status, events=("updated",))
    return json_response(dispute._export())


async def dispute_close(request):
    dispute = _dispute(request)
    _open_one(dispute)
    dispute._move("lost", events=("closed",))
    return json_response(dispute._export())


async def dispute_decide(request):
    dispute = _dispute(request)
    data = await get_post_data(request) or {}
    status = data.get("status")
    if status not in ("won", "lost"):
        raise UserError(400, "status: won or lost")
    _open_one(dispute)
    if status == "won":
        dispute._move("won", funds=dispute.amount, events=("closed", "funds_reinstated"))
    else:
        dispute._move("lost", events=("closed",))
    return json_response(dispute._export())


def install(app: web.Application) -> None:
    router = app.router
    router.add_post("/_config/disputes", dispute_open)
    router.add_post("/_config/disputes/{id}/decide", dispute_decide)
    router.add_get("/v1/disputes", dispute_list)
    router.add_get("/v1/disputes/{id}", dispute_retrieve)
    router.add_post("/v1/disputes/{id}", dispute_update)
    router.add_post("/v1/disputes/{id}/close", dispute_close)
