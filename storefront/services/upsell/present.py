"""Presenting post-purchase offers: which offer this order may get, its decision row (price
and tax frozen as shown), and the stage the post-purchase page shows."""

from __future__ import annotations

import datetime as dt
import secrets

from django.db import IntegrityError, transaction
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.urls import reverse
from django.utils import timezone

from analytics.models import EventName
from analytics.services import event_append
from core.fixedsql import FixedQuery
from core.money import Money
from offers.experiments import OfferPresentation, buyer_key, offer_for_buyer
from offers.models import DecisionStatus, Offer, OfferDecision, OfferKind
from offers.selectors import downsell_for_upsell, upsell_for_product
from offers.services import offer_price_check
from payments import services as payments
from payments.models import AttemptStatus
from storefront.models import OWNED_ORDER_STATUSES, LineKind, Order, OrderLine, OrderStatus
from storefront.pricing import Jurisdiction, offer_line_price
from storefront.services.orders import event_fields_for
from storefront.services.upsell.common import (
    _PRIMARY_OPEN,
    OfferStep,
    _primary_attempt,
    offer_token,
    token_max_age,
)

# --- reads -----------------------------------------------------------------------------------


def _owns_product(order: Order, product_id: int) -> bool:
    """The buyer already has this product: on this order, or on any paid order of theirs."""
    return _OWNED_ELSEWHERE.exists(int(product_id), order.customer_id) or _ON_ORDER.exists(
        order.pk, int(product_id)
    )


_OWNED_ELSEWHERE = FixedQuery(
    OrderLine,
    lambda product_id, customer_id: OrderLine.objects.filter(
        product_id=product_id, order__customer_id=customer_id
    ).filter(order__status__in=OWNED_ORDER_STATUSES),
)
_ON_ORDER = FixedQuery(
    OrderLine,
    lambda order_id, product_id: OrderLine.objects.filter(order_id=order_id, product_id=product_id),
)


def _offer_fits(order: Order, offer: Offer | None) -> bool:
    return (
        offer is not None
        and offer.currency == order.currency
        and not _owns_product(order, offer.product_id)
        and _within_discounted_cart(order, offer)
    )


def _within_discounted_cart(order: Order, offer: Offer) -> bool:
    """The pricing guardrail on what the buyer actually paid: with a coupon, the cart is the
    checkout's lines after the discount (a line's price is its total where prices include
    tax, else its net), so an upsell the creator priced at half the full cart is not pushed
    at a buyer whose cart the coupon made smaller. Without a coupon the offer's own check
    against the core price (made when it was saved) holds."""
    if not order.coupon_code or offer.allow_high_price:
        return True
    lines = order.lines.filter(kind__in=[LineKind.CORE, LineKind.BUMP])
    cart = sum(line.total_amount if line.tax_inclusive else line.net_amount for line in lines)
    core = next((line for line in lines if line.kind == LineKind.CORE), None)
    if core is None or cart <= 0:
        return False
    check = offer_price_check(
        offer_price=offer.price,
        core_price=Money(core.net_amount + core.discount_amount, order.currency),
        cart_total=Money(cart, order.currency),
    )
    return not check.refusal


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


_CORE_LINE = FixedQuery(
    OrderLine,
    lambda order_id: OrderLine.objects.filter(order_id=order_id, kind=LineKind.CORE),
)


def _upsell_shown(order: Order) -> OfferPresentation:
    """The upsell this order may get, as the buyer's experiment arm shows it. Only buyers
    who could see the offer are assigned; the no-offer control gets `offer=None`."""
    core = _CORE_LINE.first(order.pk)
    if core is None or not _can_offer(order):
        return OfferPresentation(None, "", {})
    if core.total_amount == 0 and not order.lines.exclude(total_amount=0).exists():
        # A free trial's card-only checkout: no payment to add a one-click charge to (the
        # settlement gate waits for one), so no one-click offer (docs/subscriptions.md).
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
    if _ORDER_DECISIONS.exists(order.pk) or _eligible_upsell(order) is not None:
        return reverse("upsell-offer", args=[order.token])
    return None


# --- presenting ------------------------------------------------------------------------------


def _present(*, order: Order, offer: Offer, kind: str, variant: str = "") -> OfferDecision | None:
    """Create the decision row for `offer` (price and tax frozen as shown) and log the display.
    None when a cap refuses it (the database decides, so concurrent orders cannot both pass)."""
    line, tax_name = offer_line_price(
        kind=kind, offer=offer, jurisdiction=Jurisdiction.for_order(order)
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


_ORDER_DECISIONS = FixedQuery(
    OfferDecision,
    lambda order_id: OfferDecision.objects.select_related("offer__product", "attempt").filter(
        order_id=order_id
    ),
)


def offer_step(*, order: Order, schema: str, present: bool = True) -> OfferStep:
    """What the post-purchase page shows now; presents the upsell (or downsell) when due."""
    decisions = {d.kind: d for d in _ORDER_DECISIONS.all(order.pk)}
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
