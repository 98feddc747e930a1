"""A free trial's card-only checkout: nothing to pay today, so the card the buyer sets up is
verified and saved (a SetupIntent, no payment), the order is settled at 0 and its
subscriptions start trialing; the first charge is the renewal job's at the trial's end
(docs/subscriptions.md). A total of 0 for any other reason is refused with a reason."""

from __future__ import annotations

from django.db import transaction

from offers.models import Coupon
from storefront.models import Order, OrderStatus
from storefront.pricing import Quote
from storefront.services.errors import CheckoutError
from storefront.services.orders import order_paid

__all__ = ["free_trial_only", "refuse_zero_total", "trial_start", "trial_still_offered"]


def free_trial_only(quote: Quote) -> bool:
    """Nothing to pay today because every line is a free trial without a setup fee: the
    checkout collects and saves the card and charges nothing (checkout_pay)."""
    return quote.total.amount == 0 and all(_trial(line.product.pk) for line in quote.lines)


def _trial(product_id: int) -> bool:
    from subscriptions.services import plan_for

    plan = plan_for(product_id)
    return plan is not None and plan.trial_days > 0 and not plan.setup_fee_amount


def trial_still_offered(lines) -> bool:
    """At Pay, an order of 0 is still all free trials: the creator may have changed the plan
    since the checkout started (its subscriptions would start on today's plan)."""
    return all(_trial(line.product_id) for line in lines)


def refuse_zero_total(quote: Quote, coupon: Coupon | None) -> None:
    """A total of 0 (`quote` priced without the coupon when the coupon was refused) is a free
    trial's card-only checkout, without a coupon; anything else cannot be paid. A coupon that
    would take off a whole price is refused by offers.coupons with its own reason."""
    if not free_trial_only(quote):
        if quote.total.amount == 0:
            raise CheckoutError("product", "There is nothing to pay here. Nothing was charged.")
        return
    if coupon is not None:
        raise CheckoutError(
            "coupon",
            "Nothing is charged today for this free trial, so there is nothing for a coupon "
            "to take off. Remove the code to start the trial.",
        )


def trial_start(order: Order, lines: int) -> None:
    """A free trial's card-only checkout (docs/subscriptions.md): the card is verified and
    saved, nothing is charged and no payment exists. The order is settled at 0 ("paid":
    nothing is owed today, so it owns what it bought), its subscriptions start trialing on
    the saved card, and the receipt says when the first charge comes. Under the order's lock:
    a double submit starts it once."""
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        if locked.status != OrderStatus.PENDING:
            if locked.status == OrderStatus.PAID:
                return
            raise CheckoutError("order", "This checkout is closed. Please start again.")
        order_paid(order=locked, amount=0, lines=lines, trial=True)
