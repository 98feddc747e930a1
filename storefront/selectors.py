"""Read models for the hosted pages and the order flow."""
from django.db.models import QuerySet

from core import orderkeys
from payments.models import ChargeAttempt
from storefront.models import Product


def product_list_active() -> QuerySet[Product]:
    return Product.objects.filter(status=Product.Status.ACTIVE)


def product_get_active(*, slug: str) -> Product | None:
    return product_list_active().filter(slug=slug).first()


def order_primary_attempt(*, order_id: int) -> ChargeAttempt | None:
    """The checkout's payment for core + bump (purpose "order:<id>:primary"), if made."""
    return ChargeAttempt.objects.filter(
        purpose=orderkeys.order_purpose(order_id, orderkeys.PRIMARY)
    ).first()
