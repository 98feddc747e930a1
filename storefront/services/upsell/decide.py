"""Deciding on a post-purchase offer: accept (commit the charge attempt, then open the gate),
decline, confirm or abandon 3-D Secure, and the sweep of confirmations left waiting."""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.utils import timezone

from analytics.models import EventName
from analytics.services import event_append
from core import orderkeys
from core.loops import each_record, quarantined_pks
from core.money import Money
from core.returning import update_returning
from offers.models import DecisionStatus, Offer, OfferDecision
from payments import services as payments
from payments.gateway import GatewayRejected, GatewayUnavailable
from payments.models import AttemptStatus
from storefront.models import Order, OrderStatus
from storefront.selectors import order_primary_attempts, order_with_customer
from storefront.services.orders import event_fields_for
from storefront.services.upsell.common import (
    _PRIMARY_FAILED,
    OfferRefused,
    _flag_for_followup,
    _token_load,
)
from storefront.services.upsell.gate import _release

logger = logging.getLogger(__name__)


# --- deciding --------------------------------------------------------------------------------


def _order_for(order_token: str) -> Order:
    order = order_with_customer(token=order_token)
    if order is None:
        raise OfferRefused(404, "No such order", "This order does not exist.")
    return order


def _claim(*, order: Order, data: dict, to: str, accept: bool = False) -> OfferDecision:
    """Consume the token: PRESENTED → `to` with one conditional UPDATE … RETURNING (inside a
    transaction). The same statement returns what deciding reads next, as attributes of the
    decision: `offer_product_id`; for an accept, `primary_status` (the checkout payment's
    attempt, None if there is none) and the buyer's saved card, `card_ref` and
    `card_customer_ref` (None if there is none; payments.vault_method_for)."""
    now = timezone.now()
    decisions, offers = OfferDecision._meta.db_table, Offer._meta.db_table
    joins, join_params = f'"{offers}" AS "offer"', []
    extra, extra_params = '"offer"."product_id" AS "offer_product_id"', []
    if accept:
        card_sql, card_params = payments.vault_method_refs_sql(email=order.customer.email)
        joins += f' LEFT JOIN LATERAL ({card_sql}) AS "card"("method_ref", "customer_ref") ON TRUE'
        join_params += card_params
        primary_sql, extra_params = (
            order_primary_attempts(order_id=order.pk).values("status")[:1].query.sql_with_params()
        )
        extra += f', ({primary_sql}) AS "primary_status", "card"."method_ref" AS "card_ref", '
        extra += '"card"."customer_ref" AS "card_customer_ref"'
    claimed = update_returning(
        OfferDecision,
        assignments='"status" = %s, "decided_at" = %s',
        joins=joins,
        where=f'"{decisions}"."order_id" = %s AND "{decisions}"."offer_id" = %s AND '
        f'"{decisions}"."nonce" = %s AND "{decisions}"."status" = %s AND '
        f'"{decisions}"."expires_at" > %s AND "offer"."id" = "{decisions}"."offer_id"',
        params=[
            to,
            now,
            *join_params,
            order.pk,
            data.get("f"),
            str(data.get("n")),
            DecisionStatus.PRESENTED,
            now,
            *extra_params,
        ],
        extra=extra,
    )
    if claimed:
        return claimed[0]
    # Refused: say why, from the row as it stands.
    decision = OfferDecision.objects.filter(
        order=order, offer_id=data.get("f"), nonce=str(data.get("n"))
    ).first()
    if decision is None:
        raise OfferRefused(
            403,
            "This offer link is not valid",
            "This offer does not belong to this order. Nothing was charged.",
        )
    if decision.status != DecisionStatus.PRESENTED:
        raise OfferRefused(
            409,
            "Your choice was already recorded",
            "This offer was already answered; it cannot be used twice. Nothing more was charged.",
        )
    raise OfferRefused(
        410,
        "This offer has expired",
        "The offer was open for a limited time. Nothing was charged.",
    )


def offer_accept(*, order_token: str, signed: str, schema: str) -> OfferDecision:
    """Record the one-click accept and commit its charge attempt; charge it only if the
    primary payment has succeeded (otherwise it waits for `release_gated_offers`)."""
    order = _order_for(order_token)
    data = _token_load(signed=signed, schema=schema, order=order)
    with transaction.atomic():
        # The claim, the primary payment's status and the saved card: one statement.
        decision = _claim(order=order, data=data, to=DecisionStatus.ACCEPTED, accept=True)
        primary_status = decision.primary_status
        if (
            primary_status is None
            or primary_status in _PRIMARY_FAILED
            or order.status == OrderStatus.FAILED
        ):
            raise OfferRefused(
                409,
                "Your first payment did not go through",
                "We cannot add an offer to an unpaid order. Nothing was charged.",
            )
        if decision.card_ref is None:
            raise OfferRefused(
                409,
                "No saved card",
                "There is no saved card for one-click offers. Nothing was charged.",
            )
        kind = decision.kind
        attempt, _ = payments.attempt_get_or_create(
            purpose=orderkeys.order_purpose(order.pk, kind),
            reference=order.reference,
            amount=Money(decision.total_amount, decision.currency),
            customer_ref=decision.card_customer_ref,
            payment_method_ref=decision.card_ref,
            off_session=True,
            # Stable key: the order holds at most one post-purchase line (a DB constraint),
            # and OrderLine.line_key names it the same way once it exists.
            allocation={
                orderkeys.line_key(
                    kind=kind, line_id=None, order_id=order.pk
                ): decision.total_amount
            },
        )
        OfferDecision.objects.filter(pk=decision.pk).update(attempt=attempt)
        decision.attempt = attempt
        event_append(
            EventName.UPSELL_ACCEPTED,
            offer_id=decision.offer_id,
            product_id=decision.offer_product_id,
            amount=decision.total_amount,
            properties={"kind": kind},
            **event_fields_for(order),
        )
    if primary_status == AttemptStatus.SUCCEEDED:
        # Committed above, and the primary had settled when we read it in that transaction
        # (a final status): the gate is open, so send this one attempt now, without the
        # gate's re-reads. attempt_execute claims it once, whoever else tries.
        try:
            decision.attempt = payments.attempt_execute(attempt_id=attempt.pk)
        except Exception:
            # Stays IN_FLIGHT; reconciliation re-reads it from the gateway: never charged twice.
            logger.exception("post-purchase attempt %s not recorded", attempt.pk)
            decision.attempt.refresh_from_db()
        return decision
    _release(order.pk)  # the primary is still processing: the gate decides, now or at settling
    decision.attempt.refresh_from_db()
    return decision


def offer_decline(*, order_token: str, signed: str, schema: str) -> OfferDecision:
    order = _order_for(order_token)
    data = _token_load(signed=signed, schema=schema, order=order)
    with transaction.atomic():
        decision = _claim(order=order, data=data, to=DecisionStatus.DECLINED)
        event_append(
            EventName.UPSELL_DECLINED,
            offer_id=decision.offer_id,
            product_id=decision.offer_product_id,
            properties={"kind": decision.kind},
            **event_fields_for(order),
        )
    return decision


def _awaiting_action(order: Order) -> OfferDecision:
    decision = (
        OfferDecision.objects.select_related("attempt", "offer__product")
        .filter(
            order=order,
            status=DecisionStatus.ACCEPTED,
            attempt__status=AttemptStatus.REQUIRES_ACTION,
        )
        .first()
    )
    if decision is None:
        raise OfferRefused(
            409,
            "Nothing to confirm",
            "There is no payment waiting for your confirmation on this order.",
        )
    return decision


def offer_confirm(*, order_token: str) -> OfferDecision:
    """After on-session authentication in the page: re-read the payment and record it."""
    order = _order_for(order_token)
    decision = _awaiting_action(order)
    try:
        payments.attempt_refresh(attempt_id=decision.attempt_id)
    except (GatewayUnavailable, GatewayRejected):
        logger.warning("could not re-read %s; reconciliation will", decision.attempt_id)
    decision.attempt.refresh_from_db()
    return decision


def offer_abandon_confirmation(*, order_token: str) -> OfferDecision:
    """The buyer chose not to authenticate now: flag the offer for the follow-up email."""
    order = _order_for(order_token)
    decision = _awaiting_action(order)
    with transaction.atomic():
        _flag_for_followup(decision, reason="authentication_abandoned")
    return decision


LOOP_ABANDONED = "storefront.flag_abandoned"


def offers_flag_abandoned(*, older_than: dt.timedelta = dt.timedelta(minutes=30)) -> int:
    """Periodic sweep: confirmations left waiting longer than `older_than` are abandoned.
    A decision that fails to flag is recorded and skipped (core/loops.py)."""
    stale = (
        OfferDecision.objects.select_related("order", "offer")
        .filter(
            status=DecisionStatus.ACCEPTED,
            followup_flagged_at__isnull=True,
            attempt__status=AttemptStatus.REQUIRES_ACTION,
            attempt__sent_at__lt=timezone.now() - older_than,
        )
        .exclude(pk__in=quarantined_pks(LOOP_ABANDONED))
    )

    def flag(decision: OfferDecision) -> bool:
        with transaction.atomic():
            return _flag_for_followup(decision, reason="authentication_abandoned")

    run = each_record(
        LOOP_ABANDONED,
        stale,
        flag,
        key=lambda d: d.pk,
        label=lambda d: f"offer decision {d.pk} on order {d.order_id}",
    )
    return sum(1 for flagged in run.results if flagged)
