"""Read models for the hosted pages."""
from django.db.models import QuerySet

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
    attempt = ChargeAttempt.objects.filter(purpose=f"order:{order.pk}:primary").only(
        "status").first()
    if attempt is None or attempt.status == AttemptStatus.REQUIRES_ACTION:
        return PaymentState.UNPAID
    if attempt.status in (AttemptStatus.DECLINED, AttemptStatus.CANCELED):
        return PaymentState.FAILED
    return PaymentState.CONFIRMING
