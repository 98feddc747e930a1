"""The product's showcase: what the hosted pages show of its pictures and testimonials."""

from __future__ import annotations

from django.db import transaction

from storefront.models import Product, ProductImage, Testimonial


def product_showcase_refresh(*, product_id: int) -> dict:
    """Copy the product's pictures and testimonials, in order, onto `Product.showcase`.

    Called after every change to those rows (the admin's inlines are their only writer). The
    product row is locked so two saves at once leave the later state, not a mix."""
    with transaction.atomic():
        Product.objects.select_for_update().filter(pk=product_id).first()
        showcase = {
            "images": [
                {"alt": image.alt, "record": image.variants}
                for image in ProductImage.objects.filter(product_id=product_id)
                if image.variants
            ],
            "testimonials": [
                {"quote": t.quote, "author": t.author}
                for t in Testimonial.objects.filter(product_id=product_id)
            ],
        }
        Product.objects.filter(pk=product_id).update(showcase=showcase)
    return showcase
