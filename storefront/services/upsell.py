"""Post-purchase offers: one-click upsell then downsell, behind the settlement gate, charged once.

The buyer sees one offer right after paying. Its decision row (offers.OfferDecision) is the
single-use token: a signed, time-limited token names the row, and accepting moves it out of
PRESENTED with one conditional UPDATE. Accepting commits a ChargeAttempt (off-session, the
vaulted card, the price and tax the buyer saw) and only then, outside any transaction, charges
it — if and only if the primary payment has succeeded. Otherwise the attempt waits as CREATED
and `release_gated_offers` (a task enqueued when the primary settles or fails) sends or cancels
it. payments.services makes sure an attempt reaches the gateway at most once.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.urls import reverse
from django.utils import timezone

from analytics.models import EventName
from analytics.services import event_append
from core import orderkeys
from core.loops import each_record, quarantined_pks
from core.money import Money
from offers.experiments import OfferPresentation, buyer_key, offer_for_buyer
from offers.models import DecisionStatus, Offer, OfferDecision, OfferKind
from offers.selectors import downsell_for_upsell, upsell_for_product
from payments import services as payments
from payments.gateway import GatewayRejected, GatewayUnavailable
from payments.models import AttemptStatus, ChargeAttempt
from storefront.models import LineKind, Order, OrderLine, OrderStatus, StoreSettings
from storefront.pricing import Jurisdiction, price_line, tax_rate_for
from storefront.selectors import order_primary_attempt
from storefront.services.errors import BuyerRefused
from storefront.services.orders import event_fields_for

logger = logging.getLogger(__name__)

_SALT = "storefront.upsell"
POST_PURCHASE = (OfferKind.UPSELL, OfferKind.DOWNSELL)
_OWNED_STATUSES = (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED)
# The primary payment has been sent and may still settle: the offer may be shown and accepted,
# but its charge waits behind the gate.
_PRIMARY_OPEN = (AttemptStatus.IN_FLIGHT, AttemptStatus.PROCESSING)
_PRIMARY_FAILED = (AttemptStatus.DECLINED, AttemptStatus.CANCELED)
_AUTH_FAILURES = {
    "authentication_failed",
    "authentication_required",
    "payment_intent_authentication_failure",
}


def token_max_age() -> int:
    """Seconds an offer's accept/decline token stays valid (UPSELL_TOKEN_MAX_AGE_SECONDS)."""
    return int(getattr(settings, "UPSELL_TOKEN_MAX_AGE_SECONDS", 30 * 60))


class OfferRefused(BuyerRefused):
    """A refused accept/decline/confirm, with an HTTP status and a message for the buyer."""


@dataclass(frozen=True)
class OfferStep:
    """Where the buyer stands after checkout.

    stage: "offer" (show `decision` with `token`), "queued" (accepted, waiting for the primary
    payment), "charging", "requires_action" (confirm with `client_secret` on-session),
    "charged", or "closed" (nothing more to offer; `message` says why, if anything).
    """

    stage: str
    order: Order
    decision: OfferDecision | None = None
    token: str = ""
    client_secret: str = ""
    message: str = ""


# --- tokens ------------------------------------------------------------------------------------


def offer_token(*, decision: OfferDecision, schema: str) -> str:
    # The schema, order and offer are signed in: a token from another store, order or offer
    # is refused before any row is touched. The nonce makes it name exactly one decision row.
    return signing.dumps(
        {"s": schema, "o": decision.order_id, "f": decision.offer_id, "n": decision.nonce},
        salt=_SALT,
    )


def _token_load(*, signed: str, schema: str, order: Order) -> dict:
    try:
        data = signing.loads(signed or "", salt=_SALT, max_age=token_max_age())
    except signing.SignatureExpired as exc:
        raise OfferRefused(
            410,
            "This offer has expired",
            "The offer was open for a limited time. Nothing was charged.",
        ) from exc
    except signing.BadSignature as exc:
        raise OfferRefused(
            403,
            "This offer link is not valid",
            "We could not verify this offer. Nothing was charged.",
        ) from exc
    if not isinstance(data, dict) or data.get("s") != schema or data.get("o") != order.pk:
        raise OfferRefused(
            403,
            "This offer is for another order",
            "This offer does not belong to this order. Nothing was charged.",
        )
    return data


# --- reads -----------------------------------------------------------------------------------


def _primary_attempt(order: Order) -> ChargeAttempt | None:
    return order_primary_attempt(order_id=order.pk)


def _owns_product(order: Order, product_id: int) -> bool:
    """The buyer already has this product: on this order, or on any paid order of theirs."""
    return (
        OrderLine.objects.filter(product_id=product_id, order__customer_id=order.customer_id)
        .filter(order__status__in=_OWNED_STATUSES)
        .exists()
        or order.lines.filter(product_id=product_id).exists()
    )


def _offer_fits(order: Order, offer: Offer | None) -> bool:
    return (
        offer is not None
        and offer.currency == order.currency
        and not _owns_product(order, offer.product_id)
    )


def _can_offer(order: Order) -> bool:
    """Paid (or being paid) with a vaulted card: a one-click offer needs no card re-entry."""
    if order.status == OrderStatus.PAID:
        pass
    elif order.status == OrderStatus.PENDING:
        primary = _primary_attempt(order)
        if primary is None or primary.status not in _PRIMARY_OPEN:
            return False
    else:
        return False
    return order.card_saved and payments.vault_method_for(email=order.customer.email) is not None


def _upsell_shown(order: Order) -> OfferPresentation:
    """The upsell this order may get, as the buyer's experiment arm shows it. Only buyers
    who could see the offer are assigned; the no-offer control gets `offer=None`."""
    core = order.lines.filter(kind=LineKind.CORE).first()
    if core is None or not _can_offer(order):
        return OfferPresentation(None, "", {})
    offer = upsell_for_product(product_id=core.product_id)
    if not _offer_fits(order, offer):
        return OfferPresentation(None, "", {})
    return offer_for_buyer(offer=offer, visitor_key=_buyer_key(order))


def _buyer_key(order: Order) -> str:
    return buyer_key(visitor_id=order.visitor_id, email=order.customer.email)


def _eligible_upsell(order: Order) -> Offer | None:
    return _upsell_shown(order).offer


def next_step_url(*, order: Order) -> str | None:
    """The post-purchase offer page for this order, or None to go straight to thanks."""
    if OfferDecision.objects.filter(order=order).exists() or _eligible_upsell(order) is not None:
        return reverse("upsell-offer", args=[order.token])
    return None


# --- presenting ------------------------------------------------------------------------------


def _present(*, order: Order, offer: Offer, kind: str, variant: str = "") -> OfferDecision | None:
    """Create the decision row for `offer` (price and tax frozen as shown) and log the display.
    None when a cap refuses it (the database decides, so concurrent orders cannot both pass)."""
    rate, tax_name = tax_rate_for(Jurisdiction(order.country, order.region))
    line = price_line(
        kind=kind,
        product=offer.product,
        price=offer.price,
        offer_id=offer.pk,
        description=offer.product.name,
        rate=rate,
        inclusive=StoreSettings.current().prices_include_tax,
    )
    now = timezone.now()
    cap = offer.customer_cap if kind == OfferKind.UPSELL else None
    try:
        with transaction.atomic():
            decision = OfferDecision.objects.create(
                order=order,
                customer_id=order.customer_id,
                offer=offer,
                kind=kind,
                nonce=secrets.token_hex(16),
                expires_at=now + dt.timedelta(seconds=token_max_age()),
                cap_window=DateTimeTZRange(now, now + cap) if cap else None,
                net_amount=line.net.amount,
                tax_amount=line.tax.amount,
                total_amount=line.total.amount,
                currency=line.total.currency,
                tax_rate=line.rate,
                tax_inclusive=line.inclusive,
                tax_name=tax_name,
            )
            if variant and not order.variant:
                Order.objects.filter(pk=order.pk, variant="").update(variant=variant)
                order.variant = variant
            event_append(
                EventName.UPSELL_OFFERED
                if kind == OfferKind.UPSELL
                else EventName.DOWNSELL_OFFERED,
                offer_id=offer.pk,
                product_id=offer.product_id,
                amount=line.total.amount,
                **{**event_fields_for(order), "variant": variant or order.variant},
            )
    except IntegrityError:
        # Shown already (a concurrent page load) or over the customer's cap.
        return OfferDecision.objects.filter(order=order, kind=kind).first()
    decision.offer = offer
    return decision


def _present_downsell(order: Order, upsell: OfferDecision) -> OfferDecision | None:
    existing = (
        OfferDecision.objects.select_related("offer__product", "attempt")
        .filter(order=order, kind=OfferKind.DOWNSELL)
        .first()
    )
    if existing is not None:
        return existing
    offer = downsell_for_upsell(upsell_id=upsell.offer_id)
    if not _offer_fits(order, offer) or not _can_offer(order):
        return None
    return _present(order=order, offer=offer, kind=OfferKind.DOWNSELL)


def offer_step(*, order: Order, schema: str, present: bool = True) -> OfferStep:
    """What the post-purchase page shows now; presents the upsell (or downsell) when due."""
    decisions = {
        d.kind: d
        for d in OfferDecision.objects.select_related("offer__product", "attempt").filter(
            order=order
        )
    }
    current = decisions.get(OfferKind.DOWNSELL) or decisions.get(OfferKind.UPSELL)
    if current is None:
        shown = _upsell_shown(order) if present else OfferPresentation(None, "", {})
        current = (
            _present(order=order, offer=shown.offer, kind=OfferKind.UPSELL, variant=shown.variant)
            if shown.offer
            else None
        )
        if current is None:
            return OfferStep("closed", order)
    elif current.kind == OfferKind.UPSELL and current.status == DecisionStatus.PRESENTED:
        # Shown again: the same (sticky) arm's headline and benefit; the price is the frozen one.
        again = offer_for_buyer(offer=current.offer, visitor_key=_buyer_key(order))
        if again.offer is not None:
            current.offer = again.offer
    step = _step_for(order, current, schema)
    if step.stage == "next" and present and current.kind == OfferKind.UPSELL:
        downsell = _present_downsell(order, current)
        if downsell is not None:
            return _step_for(order, downsell, schema)
    if step.stage == "next":
        return OfferStep("closed", order, current, message=step.message)
    return step


def _step_for(order: Order, decision: OfferDecision, schema: str) -> OfferStep:
    """The stage for one decision; "next" means the downsell may follow."""
    if decision.status == DecisionStatus.PRESENTED:
        if decision.expires_at <= timezone.now():
            return OfferStep("closed", order, decision, message="This offer has expired.")
        return OfferStep(
            "offer", order, decision, token=offer_token(decision=decision, schema=schema)
        )
    if decision.status == DecisionStatus.DECLINED:
        return OfferStep("next", order, decision)
    attempt = decision.attempt
    name = decision.offer.product.name
    if attempt is None:  # pragma: no cover - accepted rows get their attempt in one transaction
        return OfferStep("closed", order, decision)
    if attempt.status == AttemptStatus.CREATED:
        primary = _primary_attempt(order)
        queued = primary is None or primary.status != AttemptStatus.SUCCEEDED
        return OfferStep("queued" if queued else "charging", order, decision)
    if attempt.status in (AttemptStatus.IN_FLIGHT, AttemptStatus.PROCESSING):
        return OfferStep("charging", order, decision)
    if attempt.status == AttemptStatus.REQUIRES_ACTION:
        if decision.followup_flagged_at:
            return OfferStep(
                "closed",
                order,
                decision,
                message=(
                    f"{name} was not added and nothing was charged for it. "
                    "We will email you a link "
                    "to add it later."
                ),
            )
        return OfferStep("requires_action", order, decision, client_secret=attempt.client_secret)
    if attempt.status == AttemptStatus.SUCCEEDED:
        return OfferStep("charged", order, decision, message=f"{name} was added to your order.")
    if attempt.status == AttemptStatus.CANCELED:
        return OfferStep(
            "closed",
            order,
            decision,
            message=(f"Your first payment did not go through, so {name} was not charged."),
        )
    if decision.followup_flagged_at:
        return OfferStep(
            "closed",
            order,
            decision,
            message=(
                f"Your bank did not confirm the payment, so {name} was not charged. We will email "
                "you a link to add it later."
            ),
        )
    return OfferStep(
        "next",
        order,
        decision,
        message=(f"Your card was declined for {name}; nothing was charged for it."),
    )


# --- deciding --------------------------------------------------------------------------------


def _order_for(order_token: str) -> Order:
    order = Order.objects.select_related("customer").filter(token=order_token).first()
    if order is None:
        raise OfferRefused(404, "No such order", "This order does not exist.")
    return order


def _claim(*, order: Order, data: dict, to: str) -> OfferDecision:
    """Consume the token: PRESENTED → `to` with one conditional UPDATE (inside a transaction)."""
    now = timezone.now()
    claimed = OfferDecision.objects.filter(
        order=order,
        offer_id=data.get("f"),
        nonce=str(data.get("n")),
        status=DecisionStatus.PRESENTED,
        expires_at__gt=now,
    ).update(status=to, decided_at=now)
    decision = (
        OfferDecision.objects.select_related("offer__product")
        .filter(order=order, offer_id=data.get("f"), nonce=str(data.get("n")))
        .first()
    )
    if decision is None:
        raise OfferRefused(
            403,
            "This offer link is not valid",
            "This offer does not belong to this order. Nothing was charged.",
        )
    if not claimed:
        if decision.status != DecisionStatus.PRESENTED:
            raise OfferRefused(
                409,
                "Your choice was already recorded",
                "This offer was already answered; it cannot be used twice. "
                "Nothing more was charged.",
            )
        raise OfferRefused(
            410,
            "This offer has expired",
            "The offer was open for a limited time. Nothing was charged.",
        )
    return decision


def offer_accept(*, order_token: str, signed: str, schema: str) -> OfferDecision:
    """Record the one-click accept and commit its charge attempt; charge it only if the
    primary payment has succeeded (otherwise it waits for `release_gated_offers`)."""
    order = _order_for(order_token)
    data = _token_load(signed=signed, schema=schema, order=order)
    with transaction.atomic():
        decision = _claim(order=order, data=data, to=DecisionStatus.ACCEPTED)
        primary = _primary_attempt(order)
        if (
            primary is None
            or primary.status in _PRIMARY_FAILED
            or order.status == OrderStatus.FAILED
        ):
            raise OfferRefused(
                409,
                "Your first payment did not go through",
                "We cannot add an offer to an unpaid order. Nothing was charged.",
            )
        method = payments.vault_method_for(email=order.customer.email)
        if method is None:
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
            customer_ref=method.customer.gateway_ref,
            payment_method_ref=method.gateway_ref,
            off_session=True,
            # Stable key: the order holds at most one post-purchase line (a DB constraint),
            # and OrderLine.line_key names it the same way once it exists.
            allocation={orderkeys.line_key(kind=kind, line_id=None, order_id=order.pk):
                        decision.total_amount},
        )
        OfferDecision.objects.filter(pk=decision.pk).update(attempt=attempt)
        decision.attempt = attempt
        event_append(
            EventName.UPSELL_ACCEPTED,
            offer_id=decision.offer_id,
            product_id=decision.offer.product_id,
            amount=decision.total_amount,
            properties={"kind": kind},
            **event_fields_for(order),
        )
    _release(order.pk)  # committed above: the gate opens now if the primary has settled
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
            product_id=decision.offer.product_id,
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


def _flag_for_followup(decision: OfferDecision, *, reason: str) -> bool:
    """Hand the offer to the follow-up email (once) and log why it failed here."""
    flagged = OfferDecision.objects.filter(pk=decision.pk, followup_flagged_at__isnull=True).update(
        followup_flagged_at=timezone.now(), followup_reason=reason[:100]
    )
    if flagged:
        event_append(
            EventName.UPSELL_FAILED,
            offer_id=decision.offer_id,
            reason=reason[:100],
            product_id=decision.offer.product_id,
            properties={"kind": decision.kind},
            **event_fields_for(decision.order),
        )
    return bool(flagged)


def offer_abandon_confirmation(*, order_token: str) -> OfferDecision:
    """The buyer chose not to authenticate now: flag the offer for the follow-up email."""
    order = _order_for(order_token)
    decision = _awaiting_action(order)
    with transaction.atomic():
        _flag_for_followup(decision, reason="authentication_abandoned")
    return decision


LOOP_ABANDONED = "storefront.flag_abandoned"
LOOP_RELEASE = "storefront.release_gated_offers"


def offers_flag_abandoned(*, older_than: dt.timedelta = dt.timedelta(minutes=30)) -> int:
    """Periodic sweep: confirmations left waiting longer than `older_than` are abandoned.
    A decision that fails to flag is recorded and skipped (core/loops.py)."""
    stale = OfferDecision.objects.select_related("order", "offer").filter(
        status=DecisionStatus.ACCEPTED,
        followup_flagged_at__isnull=True,
        attempt__status=AttemptStatus.REQUIRES_ACTION,
        attempt__sent_at__lt=timezone.now() - older_than,
    ).exclude(pk__in=quarantined_pks(LOOP_ABANDONED))

    def flag(decision: OfferDecision) -> bool:
        with transaction.atomic():
            return _flag_for_followup(decision, reason="authentication_abandoned")

    run = each_record(LOOP_ABANDONED, stale, flag, key=lambda d: d.pk,
                      label=lambda d: f"offer decision {d.pk} on order {d.order_id}")
    return sum(1 for flagged in run.results if flagged)


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
    each_record(LOOP_RELEASE, list(queued), release,
                label=lambda attempt_id: f"queued offer charge {attempt_id} (order {order_id})")


def release_gated_offers(*, order_id: int) -> None:
    """Task body: charge or cancel acceptances queued behind the settlement gate. Safe twice."""
    _release(order_id)  # attempt_execute refuses to run inside a transaction


# --- outcomes (called by payments inside the recording transaction) --------------------------


def on_post_purchase_outcome(*, order: Order, attempt: ChargeAttempt, what: str) -> None:
    """Add the line when the charge succeeded; log failures. Never raises: an exception here
    would roll back the recording of a real payment."""
    if what not in POST_PURCHASE:
        logger.error("unknown post-purchase purpose %s", attempt.purpose)
        return
    decision = OfferDecision.objects.select_related("offer").filter(attempt=attempt).first()
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
        try:
            with transaction.atomic():
                OrderLine.objects.create(
                    order=order,
                    kind=what,
                    product_id=decision.offer.product_id,
                    offer_id=decision.offer_id,
                    description=decision.offer.product.name,
                    net_amount=decision.net_amount,
                    tax_amount=decision.tax_amount,
                    total_amount=decision.total_amount,
                    currency=decision.currency,
                    tax_rate=decision.tax_rate,
                    tax_inclusive=decision.tax_inclusive,
                    tax_country=order.country,
                    tax_region=order.region,
                )
        except IntegrityError:
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
