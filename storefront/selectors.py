"""Read models for the hosted pages and the order flow."""

from django.db.models import QuerySet

from core import orderkeys
from payments.models import AttemptStatus, ChargeAttempt
from storefront.models import Order, OrderStatus, Product


def product_list_active() -> QuerySet[Product]:
    return Product.objects.filter(status=Product.Status.ACTIVE)


def product_get_active(*, slug: str) -> Product | None:
    return product_list_active().filter(slug=slug).first()


class PaymentState:
    """What the order page tells the buyer about their payment."""

    PAID = "paid"
    CONFIRMING = "confirming"  # the gateway has it and has not answered yet
    FAILED = "failed"  # declined, 3-D Secure failed, card not verified: nothing taken
    UNPAID = "unpaid"  # never sent, or the bank's confirmation was never given


def order_payment_state(*, order: Order) -> str:
    if order.status in (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED):
        return PaymentState.PAID
    if order.status == OrderStatus.FAILED:
        return PaymentState.FAILED
    attempt = order_primary_attempt(order_id=order.pk)
    if attempt is None or attempt.status == AttemptStatus.REQUIRES_ACTION:
        return PaymentState.UNPAID
    if attempt.status in (AttemptStatus.DECLINED, AttemptStatus.CANCELED):
        return PaymentState.FAILED
    return PaymentState.CONFIRMING


def order_primary_attempt(*, order_id: int) -> ChargeAttempt | None:
    """The checkout's payment for core + bump (purpose "order:<id>:primary"), if made."""
    return ChargeAttempt.objects.filter(
        purpose=orderkeys.order_purpose(order_id, orderkeys.PRIMARY)
    ).first()
