"""Partner API writes to the catalog: products and the ladder, each with its audit row.

A price, a status or a ladder position is what buyers see, so every change made with an API
key is recorded (audit.services) in the same transaction as the change itself.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from audit.services import (
    Actor,
    audit_diff,
    audit_record,
    audited_create,
    audited_update,
)
from storefront.models import Product


class LadderRefused(ValueError):
    """The new order does not name every product exactly once."""


def product_create(*, actor: Actor, data: dict[str, Any]) -> Product:
    return audited_create(
        model=Product,
        actor=actor,
        data=data,
        action="storefront.product.add",
        summary="Added product “{obj}” through the API",
    )


def product_update(*, actor: Actor, product: Product, data: dict[str, Any]) -> Product:
    return audited_update(
        obj=product,
        actor=actor,
        data=data,
        action="storefront.product.change",
        summary="Changed product “{obj}” through the API",
    )


def ladder_reorder(*, actor: Actor, product_ids: list[int]) -> list[Product]:
    """Put the products on the ladder in this order (positions 1, 2, 3, …)."""
    with transaction.atomic():
        products = {p.pk: p for p in Product.objects.select_for_update().order_by("pk")}
        if len(set(product_ids)) != len(product_ids) or set(product_ids) != set(products):
            raise LadderRefused("Give every product of the store exactly once.")
        before = {str(pk): p.ladder_position for pk, p in products.items()}
        for position, pk in enumerate(product_ids, start=1):
            if products[pk].ladder_position != position:
                Product.objects.filter(pk=pk).update(ladder_position=position)
                products[pk].ladder_position = position
        after = {str(pk): p.ladder_position for pk, p in products.items()}
        changes = audit_diff(before, after)
        if changes:
            audit_record(
                request_or_actor=actor,
                action="storefront.product.reorder",
                object_type="storefront.product",
                changes=changes,
                summary="Reordered the product ladder through the API",
            )
    return [products[pk] for pk in product_ids]
