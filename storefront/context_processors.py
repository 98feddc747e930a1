"""`{{ brand }}` in every template: the store's published brand (or the admin preview's draft)."""

from __future__ import annotations

import logging

from django.utils.functional import SimpleLazyObject

from storefront import branding

logger = logging.getLogger(__name__)


def _brand_for(request):
    preview = getattr(request, "brand_preview", None)
    if preview is not None:
        return preview
    try:
        return branding.brand_published()
    except Exception:  # an error page must render even when the cache or database is down
        logger.warning("brand unavailable; the page uses the default look", exc_info=True)
        return branding.DEFAULT


def brand(request) -> dict:
    return {"brand": SimpleLazyObject(lambda: _brand_for(request))}
