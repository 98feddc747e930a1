"""Read models for the hosted pages."""
from django.db.models import QuerySet

from storefront.models import Product


def product_list_active() -> QuerySet[Product]:
    return Product.objects.filter(status=Product.Status.ACTIVE)


def product_get_active(*, slug: str) -> Product | None:
    return product_list_active().filter(slug=slug).first()
