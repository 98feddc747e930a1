"""Offer rules that write: pricing guardrails, pausing (each pause and resume audited here)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction

from audit.services import Actor, audit_record
from core.money import Money, percent_of
from offers.models import ADDON_HARD_LIMIT, ADDON_SWEET_SPOT, Offer


@dataclass(frozen=True)
class PriceCheck:
    percent_of_core: Decimal
    percent_of_cart: Decimal
    warning: str  # outside the 10–30% sweet spot
    refusal: str  # above 50% of the cart without an explicit override


_PERIODS_PER_YEAR = {"day": 365, "week": 52, "month": 12, "year": 1}


def price_terms(product, price: Money) -> tuple[Money, Money | None, str]:
    """(first payment, total the buyer commits to, what the total covers) for `price` on
    `product`: a one-time product is (price, None, ""). A payment plan's total is all its
    instalments; an open-ended subscription's is its first year. The plan is read by model
    label: offers sits below the subscriptions app and does not import it."""
    from django.apps import apps

    if product is None or product.pk is None:
        return price, None, ""
    plan = apps.get_model("subscriptions", "Plan").objects.filter(product_id=product.pk).first()
    if plan is None:
        return price, None, ""
    first = plan.setup_fee_amount + (0 if plan.trial_days else price.amount)
    if plan.instalments:
        periods, covers = plan.instalments, f"{plan.instalments} instalments"
    else:
        periods = max(1, _PERIODS_PER_YEAR[plan.interval_unit] // plan.interval_count)
        covers = "its first year"
    total = plan.setup_fee_amount + price.amount * periods
    return Money(first, price.currency), Money(total, price.currency), covers


def offer_price_check(
    *,
    offer_price: Money,
    core_price: Money,
    cart_total: Money | None = None,
    allow_high_price: bool = False,
    product=None,
    trigger=None,
) -> PriceCheck:
    """Guardrails from the strategy article: add-ons at 10–30% of the core product convert and
    keep trust; above 50% of the cart, anchoring fails and refunds rise.

    With `product` (the offered one) and `trigger` (the core), a subscription or payment plan
    is judged by its first payment against the core's first payment (what the buyer pays
    today), and its total is named in a warning when that total is itself above the limit."""
    plan_total, covers = None, ""
    if product is not None:
        offer_price, plan_total, covers = price_terms(product, offer_price)
    if trigger is not None:
        core_price, _, _ = price_terms(trigger, core_price)
    of_core = percent_of(offer_price, core_price)
    of_cart = percent_of(offer_price, cart_total or core_price)
    low, high = ADDON_SWEET_SPOT
    warning = ""
    if not (low <= of_core <= high):
        warning = (
            f"This add-on is {of_core}% of the core price; add-ons between {low}% and {high}% "
            "convert best and keep refunds low."
        )
    if plan_total is not None:
        of_total = percent_of(plan_total, cart_total or core_price)
        if of_total > ADDON_HARD_LIMIT:
            warning = (warning + " " if warning else "") + (
                f"Over {covers} this plan comes to {plan_total.format()}, {of_total}% of what "
                "the buyer pays for the core product today: say so plainly next to the offer."
            )
    refusal = ""
    if of_cart > ADDON_HARD_LIMIT and not allow_high_price:
        refusal = (
            f"This offer is {of_cart}% of the cart, above the {ADDON_HARD_LIMIT}% limit where "
            "buyers stop trusting the anchor. Tick 'allow high price' to override."
        )
    return PriceCheck(of_core, of_cart, warning, refusal)


def offer_pause(*, actor: Actor, offer: Offer, reason: str) -> bool:
    """Active → paused, with its audit row (the guardrails pause as `Actor.system`).

    Conditional: pausing a paused offer changes nothing and records nothing.
    """
    return _offer_status_move(
        actor=actor,
        offer=offer,
        to=Offer.Status.PAUSED,
        reason=reason[:300],
        summary=f"Paused {offer}: {reason}",
    )


def offer_resume(*, actor: Actor, offer: Offer) -> bool:
    """Paused → active, with its audit row. IntegrityError: another offer of the kind is live."""
    return _offer_status_move(
        actor=actor, offer=offer, to=Offer.Status.ACTIVE, reason="", summary=f"Resumed {offer}"
    )


def _offer_status_move(*, actor: Actor, offer: Offer, to: str, reason: str, summary: str) -> bool:
    source = Offer.Status.ACTIVE if to == Offer.Status.PAUSED else Offer.Status.PAUSED
    with transaction.atomic():
        # Locked, so two pauses at once record one change, and the diff shows the old reason.
        before = (
            Offer.objects.select_for_update()
            .filter(pk=offer.pk, status=source)
            .values_list("paused_reason", flat=True)
            .first()
        )
        if before is None:
            return False
        Offer.objects.filter(pk=offer.pk).update(status=to, paused_reason=reason)
        changes = {"status": [source, to]}
        if before != reason:
            changes["paused_reason"] = [before, reason]
        verb = "pause" if to == Offer.Status.PAUSED else "resume"
        audit_record(
            request_or_actor=actor,
            action=f"offers.offer.{verb}",
            obj=offer,
            changes=changes,
            summary=summary,
        )
    return True
