"""Read models for the hosted pages and the order flow."""

from django.db.models import QuerySet, Subquery
from django.db.models.expressions import RawSQL

from core import orderkeys
from core.fixedsql import FixedQuery
from offers.coupons import CODE_RE, coupon_subquery
from payments.models import AttemptStatus, ChargeAttempt
from storefront.models import Order, OrderLine, OrderStatus, Product


def product_list_active() -> QuerySet[Product]:
    return Product.objects.filter(status=Product.Status.ACTIVE)


_ACTIVE_BY_SLUG = FixedQuery(Product, lambda slug: product_list_active().filter(slug=slug))


def product_get_active(*, slug: str, coupon_code: str = "") -> Product | None:
    """The active product; with `coupon_code`, the coupon is read in the same query
    (`product.coupon_data`, for offers.coupons.coupon_from_data): a checkout with a coupon
    costs no more queries than one without."""
    code = (coupon_code or "").strip()
    if not (code and CODE_RE.fullmatch(code)):
        return _ACTIVE_BY_SLUG.first(str(slug))
    products = product_list_active().filter(slug=slug)
    return products.annotate(coupon_data=coupon_subquery(code)).first()


_ORDER_WITH_CUSTOMER = FixedQuery(
    Order, lambda token: Order.objects.select_related("customer").filter(token=token)
)


def order_with_customer(*, token: str) -> Order | None:
    """The order with its buyer, by its public token."""
    return _ORDER_WITH_CUSTOMER.first(str(token))


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


def order_primary_attempts(*, order_id: int) -> QuerySet[ChargeAttempt]:
    """The checkout's payment for core + bump (purpose "order:<id>:primary"): one row or none."""
    return ChargeAttempt.objects.filter(
        purpose=orderkeys.order_purpose(order_id, orderkeys.PRIMARY)
    )


def order_primary_attempt(*, order_id: int) -> ChargeAttempt | None:
    """The checkout's payment for core + bump, if made."""
    return order_primary_attempts(order_id=order_id).first()


def order_for_payment(*, token: str) -> Order | None:
    """The order with its buyer and their gateway customer, and as `primary_attempt_id` the
    pk of its checkout payment's attempt if one was made (`order_primary_attempt`): one
    statement for what Pay reads first."""
    return _ORDER_FOR_PAYMENT.first(str(token))


def _order_for_payment(token: str):
    # Correlated through the outer row's id (the subquery reads no other order table).
    purpose = orderkeys.order_purpose_sql(f'"{Order._meta.db_table}"."id"', orderkeys.PRIMARY)
    attempt = ChargeAttempt.objects.filter(purpose=RawSQL(purpose, []))
    return (
        Order.objects.select_related("customer__gateway_customer")
        .annotate(primary_attempt_id=Subquery(attempt.values("pk")[:1]))
        .filter(token=token)
    )


_ORDER_FOR_PAYMENT = FixedQuery(Order, _order_for_payment)


#: An order's lines (= `order.lines.all()`), for `core.returning.update_then_select`.
ORDER_LINES = FixedQuery(OrderLine, lambda order_id: OrderLine.objects.filter(order_id=order_id))
