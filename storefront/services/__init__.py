"""Storefront services (writes): checkout, orders, post-purchase offers."""
