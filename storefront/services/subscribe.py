"""Starting subscriptions and payment plans from storefront's paid lines, and access to a
subscription's deliverables. Called inside payments' recording transaction."""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.money import Money
from payments import services as payments
from storefront.models import Order, OrderLine
from storefront.pricing import split_tax
from subscriptions import services as subscriptions
from subscriptions.models import ACCESS_STATUSES, Subscription, SubscriptionStatus

logger = logging.getLogger(__name__)


def _recurring_price(line: OrderLine) -> Money:
    """The per-period price the buyer agreed to: the offer's, else the product's."""
    if line.offer_id is not None:
        return line.offer.price
    return line.product.price


def subscriptions_start_for_lines(*, order: Order, lines: list[OrderLine]) -> list[Subscription]:
    """For each paid line whose product has a plan, its subscription, renewing at the agreed
    price taxed as the line was. A subscription product bought as a post-purchase offer on an
    order that started another subscription *replaces* it (the "upgrade to annual" upsell):
    the earlier one is cancelled at once, reason "upgraded" (docs/subscriptions.md)."""
    started: list[Subscription] = []
    method = None
    for line in lines:
        try:
            # The plan first, outside the savepoint: it is cached (no statement), and a line
            # with no plan, most of them, then costs no SAVEPOINT/RELEASE pair either.
            plan = subscriptions.plan_for(line.product_id)
            if plan is None:
                continue
            # A savepoint per line: this runs inside the transaction recording a real payment,
            # which must never be rolled back by a failure here (logged for the creator).
            with transaction.atomic():
                if method is None:
                    method = payments.vault_method_for(email=order.customer.email)
                net, tax, total = split_tax(
                    price=_recurring_price(line),
                    rate_percent=line.tax_rate,
                    inclusive=line.tax_inclusive,
                )
                replaces = None
                if line.kind in ("upsell", "downsell", "cross_sell"):
                    replaces = (
                        Subscription.objects.select_for_update(of=("self",))
                        .filter(order=order, status__in=ACCESS_STATUSES, replaced_by__isnull=True)
                        .exclude(line_key=line.line_key)
                        .order_by("pk")
                        .first()
                    )
                sub = subscriptions.subscription_start(
                    plan=plan,
                    customer_id=order.customer_id,
                    order_id=order.pk,
                    line_key=line.line_key,
                    amount=total,
                    tax_amount=tax.amount,
                    started_at=order.paid_at or timezone.now(),
                    customer_ref=method.customer.gateway_ref if method else "",
                    payment_method_ref=method.gateway_ref if method else "",
                    first_paid=not plan.trial_days,
                    replaces=replaces,
                )
                if replaces is not None:
                    subscriptions.subscription_cancel_now(
                        subscription_id=replaces.pk, by="upgrade", reason="upgraded"
                    )
        except IntegrityError:
            logger.info("order %s line %s already has its subscription", order.pk, line.pk)
            continue
        except Exception:
            logger.exception("subscription for order %s line %s not started", order.pk, line.pk)
            continue
        started.append(sub)
    return started


def line_access_allowed(line: OrderLine) -> bool:
    """Whether a paid line's deliverable may be served now: a subscription's only while it is
    running or in its grace period (past due); a one-time line always (its order's status is
    the caller's check). A line of a product with no plan asks nothing of the database (the
    plan lookup is cached): the order page stays within its query budget. A product's plan
    cannot be deleted while it has subscribers (subscriptions/admin.py)."""
    if subscriptions.plan_for(line.product_id) is None:
        return True
    sub = (
        Subscription.objects.filter(order_id=line.order_id, line_key=line.line_key)
        .only("status")
        .first()
    )
    if sub is None:
        return True
    return sub.status in ACCESS_STATUSES


def _every(unit: str, count: int) -> str:
    return f"every {count} {unit}s" if count > 1 else f"every {unit}"


def trial_terms(*, quote) -> list[str]:
    """What the checkout page says when a free trial is all there is to pay today (else
    nothing): each subscription's price (the offer's for a bump, taxed as its line) when its
    trial ends."""
    from offers.models import Offer
    from storefront.services.free_trial import free_trial_only

    if not free_trial_only(quote):
        return []
    terms = []
    for line in quote.lines:
        plan = subscriptions.plan_for(line.product.pk)
        if plan is None or not plan.trial_days:
            continue
        price = line.product.price
        if line.offer_id is not None:
            price = Offer.objects.get(pk=line.offer_id).price
        _, _, total = split_tax(price=price, rate_percent=line.rate, inclusive=line.inclusive)
        terms.append(
            f"{line.description}: free for {plan.trial_days} days, then {total} "
            f"{_every(plan.interval_unit, plan.interval_count)} until you cancel"
        )
    return terms


def order_trials(*, order: Order) -> list[dict]:
    """The order's subscriptions still in their free trial, for the receipt: nothing was
    charged for them today, and their first charge comes when the trial ends."""
    rows = (
        Subscription.objects.filter(order_id=order.pk, trial_ends_at__isnull=False)
        .filter(status=SubscriptionStatus.TRIALING)
        .select_related("product")
        .order_by("pk")
    )
    return [
        {
            "name": sub.product.name,
            "amount": Money(sub.amount, sub.currency),
            "first_charge_on": sub.trial_ends_at,
            "every": _every(sub.interval_unit, sub.interval_count),
        }
        for sub in rows
    ]
