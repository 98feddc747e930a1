"""First-click attribution: UTM parameters and referrer kept in a signed cookie."""
from __future__ import annotations

import secrets

from django.core import signing

from core.boundary import data_problem, text_or_empty

COOKIE = "sf_attr"
MAX_AGE = 90 * 24 * 3600


def attribution_read(request) -> dict[str, str] | None:
    raw = request.COOKIES.get(COOKIE)
    if not raw:
        return None
    try:
        data = signing.loads(raw, salt=COOKIE, max_age=MAX_AGE)
    except signing.BadSignature:
        return None
    # A cookie signed before the input boundary existed may carry a NUL from its campaign
    # link: treat it as absent (the next page view replaces it) rather than store it.
    if not isinstance(data, dict) or data_problem(data):
        return None
    return {k: v for k, v in data.items() if isinstance(v, str)}


def attribution_capture(request, response) -> dict[str, str]:
    """Keep the first click's source; later visits do not overwrite it."""
    current = attribution_read(request)
    if current is not None:
        return current
    data = {
        "visitor_id": secrets.token_hex(8),
        "source": text_or_empty(request.GET.get("utm_source", ""), max_length=100),
        "medium": text_or_empty(request.GET.get("utm_medium", ""), max_length=100),
        "campaign": text_or_empty(request.GET.get("utm_campaign", ""), max_length=100),
        "referrer": text_or_empty(request.META.get("HTTP_REFERER", ""), max_length=500),
    }
    response.set_cookie(
        COOKIE, signing.dumps(data, salt=COOKIE), max_age=MAX_AGE, httponly=True, samesite="Lax"
    )
    return data
