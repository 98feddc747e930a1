"""Read models for the partner API (querysets the API views filter and paginate)."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from payments.models import Refund
from storefront.models import Customer, Order, OrderLine, Product


def product_list() -> QuerySet[Product]:
    return Product.objects.order_by("ladder_position", "pk")


def customer_list() -> QuerySet[Customer]:
    return Customer.objects.order_by("-created_at", "-pk")


def order_list() -> QuerySet[Order]:
    return (
        Order.objects.select_related("customer")
        .prefetch_related(Prefetch("lines", queryset=OrderLine.objects.order_by("pk")))
        .order_by("-created_at", "-pk")
    )


def order_refunds(*, order: Order) -> QuerySet[Refund]:
    return Refund.objects.filter(reference=order.reference).order_by("pk")
