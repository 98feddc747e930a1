"""Hosted pages on the creator's domain."""
from django.http import Http404
from django.shortcuts import render

from storefront import selectors


def store_index(request):
    return render(
        request,
        "storefront/index.html",
        {"products": selectors.product_list_active(), "creator": request.tenant},
    )


def product_detail(request, slug: str):
    product = selectors.product_get_active(slug=slug)
    if product is None:
        raise Http404("This product is not available.")
    return render(
        request, "storefront/product.html", {"product": product, "creator": request.tenant}
    )
