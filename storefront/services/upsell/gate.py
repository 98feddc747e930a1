"""The settlement gate: post-purchase charges wait until the primary payment settles, then go
out or are cancelled; and their outcomes, recorded by payments inside its transaction."""

from __future__ import annotations

import datetime as dt
import logging

from django.db.models import Q
from django.utils import timezone

from analytics.models import EventName
from analytics.services import event_append
from core import orderkeys
from core.fixedsql import FixedQuery
from core.loops import each_record
from offers.models import OfferDecision
from payments import services as payments
from payments.models import AttemptStatus, ChargeAttempt
from storefront.models import Order
from storefront.selectors import order_primary_attempt
from storefront.services.orders import event_fields_for, post_purchase_line_create
from storefront.services.upsell.common import (
    _PRIMARY_FAILED,
    POST_PURCHASE,
    _flag_for_followup,
)

logger = logging.getLogger(__name__)

LOOP_RELEASE = "storefront.release_gated_offers"
LOOP_GATE_SWEEP = "storefront.gates_release_stale"
_AUTH_FAILURES = {
    "authentication_failed",
    "authentication_required",
    "payment_intent_authentication_failure",
}


# --- the settlement gate -----------------------------------------------------------------------


def _release(order_id: int) -> None:
    """Send or cancel the order's queued post-purchase attempts, as the primary stands now."""
    primary = order_primary_attempt(order_id=order_id)
    queued = ChargeAttempt.objects.filter(
        purpose__in=[orderkeys.order_purpose(order_id, kind) for kind in POST_PURCHASE],
        status=AttemptStatus.CREATED,
    ).values_list("pk", flat=True)

    def release(attempt_id: int) -> None:
        if primary is not None and primary.status == AttemptStatus.SUCCEEDED:
            try:
                payments.attempt_execute(attempt_id=attempt_id)
            except Exception:
                # The attempt stays IN_FLIGHT; reconciliation re-reads it from the gateway
                # (by its metadata) and records it: never a second charge.
                logger.exception("post-purchase attempt %s not recorded", attempt_id)
        elif primary is None or primary.status in _PRIMARY_FAILED:
            payments.attempt_cancel(attempt_id=attempt_id, reason="primary payment failed")
        # else: the primary is still processing; its settlement enqueues us again.

    # One attempt that cannot be cancelled must not keep the order's others queued.
    each_record(
        LOOP_RELEASE,
        list(queued),
        release,
        label=lambda attempt_id: f"queued offer charge {attempt_id} (order {order_id})",
    )


def release_gated_offers(*, order_id: int) -> None:
    """Task body: charge or cancel acceptances queued behind the settlement gate. Safe twice."""
    _release(order_id)  # attempt_execute refuses to run inside a transaction


def gates_release_stale(*, older_than: dt.timedelta = dt.timedelta(minutes=10)) -> int:
    """Periodic sweep: orders whose post-purchase charges still wait behind the gate although
    their primary payment settled or failed more than `older_than` ago. Their release message
    was lost (a broker that lost its data after the outbox had handed the message over): the
    release runs here instead. Safe with a late message or a second sweep at the same time:
    `attempt_execute` claims each attempt CREATED → IN_FLIGHT once. Returns the orders
    released; a primary still processing is left to its settlement, as `_release` does."""
    cutoff = timezone.now() - older_than
    kinds = Q()
    for kind in POST_PURCHASE:
        kinds |= Q(purpose__endswith=f":{kind}")
    purposes = ChargeAttempt.objects.filter(
        kinds,
        purpose__startswith=f"{orderkeys.ORDER}:",
        status=AttemptStatus.CREATED,
        created_at__lt=cutoff,
    ).values_list("purpose", flat=True)
    order_ids = sorted(
        {parsed[0] for parsed in map(orderkeys.order_purpose_parse, purposes) if parsed}
    )
    # The primary's finish, not the acceptance's age: a bank debit may settle days after the
    # buyer accepted, and its own release message is then seconds old. One read for all the
    # orders' primaries; an order with none is released too (its charges are cancelled).
    primary_of = {pk: orderkeys.order_purpose(pk, orderkeys.PRIMARY) for pk in order_ids}
    finished = dict(
        ChargeAttempt.objects.filter(purpose__in=primary_of.values()).values_list(
            "purpose", "finished_at"
        )
    )
    due = [
        pk
        for pk, purpose in primary_of.items()
        if purpose not in finished or (finished[purpose] and finished[purpose] < cutoff)
    ]
    run = each_record(
        LOOP_GATE_SWEEP,
        due,
        _release,
        label=lambda order_id: f"order {order_id}'s queued offer charges",
    )
    return len(run.results)


# --- outcomes (called by payments inside the recording transaction) --------------------------


def outcome_decision(*, attempt: ChargeAttempt, order_id: int) -> OfferDecision | None:
    """The decision a post-purchase attempt was made for, with its offer and product, and its
    order (`decision.order`) locked for the recording transaction: one statement, in place
    of the order's `SELECT … FOR UPDATE` and the decision's read. None if there is none."""
    return _OUTCOME_DECISION.first(attempt.pk, order_id)


_OUTCOME_DECISION = FixedQuery(
    OfferDecision,
    lambda attempt_id, order_id: (
        OfferDecision.objects.select_related("order", "offer__product")
        .select_for_update(of=("order",))
        .filter(attempt_id=attempt_id, order_id=order_id)
    ),
)


def on_post_purchase_outcome(
    *, order: Order, attempt: ChargeAttempt, what: str, decision: OfferDecision | None = None
) -> None:
    """Add the line when the charge succeeded; log failures. Never raises: an exception here
    would roll back the recording of a real payment. `decision`: the attempt's, when the
    caller read it with the order (`outcome_decision`); else it is read here."""
    if what not in POST_PURCHASE:
        logger.error("unknown post-purchase purpose %s", attempt.purpose)
        return
    if decision is None:
        decision = (
            OfferDecision.objects.select_related("offer__product").filter(attempt=attempt).first()
        )
    if decision is None:
        logger.error("attempt %s has no offer decision", attempt.purpose)
        return
    decision.order = order
    fields = event_fields_for(order)
    base = {
        "offer_id": decision.offer_id,
        "product_id": decision.offer.product_id,
        "properties": {"kind": what},
        **fields,
    }
    if attempt.status == AttemptStatus.SUCCEEDED:
        if not post_purchase_line_create(
            order=order,
            kind=what,
            offer=decision.offer,
            frozen=decision,
            currency=decision.currency,
        ):
            # The ledger has the charge; a second post-purchase line is what the DB refuses.
            logger.error(
                "order %s already has a post-purchase line (%s)", order.pk, attempt.purpose
            )
        event_append(EventName.UPSELL_CHARGED, amount=attempt.amount, **base)
    elif attempt.status == AttemptStatus.DECLINED:
        reason = attempt.decline_code or "declined"
        if reason in _AUTH_FAILURES:
            _flag_for_followup(decision, reason=reason)
        else:
            event_append(EventName.UPSELL_FAILED, reason=reason[:100], **base)
    elif attempt.status == AttemptStatus.CANCELED:
        event_append(EventName.UPSELL_FAILED, reason="primary_failed", **base)
