"""First-click attribution: UTM parameters and referrer kept in a signed cookie."""
from __future__ import annotations

import secrets

from django.core import signing

COOKIE = "sf_attr"
MAX_AGE = 90 * 24 * 3600


def attribution_read(request) -> dict[str, str] | None:
    raw = request.COOKIES.get(COOKIE)
    if not raw:
        return None
    try:
        return signing.loads(raw, salt=COOKIE, max_age=MAX_AGE)
    except signing.BadSignature:
        return None


def attribution_capture(request, response) -> dict[str, str]:
    """Keep the first click's source; later visits do not overwrite it."""
    current = attribution_read(request)
    if current is not None:
        return current
    data = {
        "visitor_id": secrets.token_hex(8),
        "source": request.GET.get("utm_source", "")[:100],
        "medium": request.GET.get("utm_medium", "")[:100],
        "campaign": request.GET.get("utm_campaign", "")[:100],
        "referrer": request.META.get("HTTP_REFERER", "")[:500],
    }
    response.set_cookie(
        COOKIE, signing.dumps(data, salt=COOKIE), max_age=MAX_AGE, httponly=True, samesite="Lax"
    )
    return data
