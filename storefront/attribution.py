"""First-click attribution: UTM parameters and referrer kept in a signed cookie, and the
page views counted against the same visitor id."""

from __future__ import annotations

import time

from django.core import signing

from analytics import pageviews
from core.boundary import data_problem, text_or_empty
from core.ratelimit import client_address

COOKIE = "sf_attr"
MAX_AGE = 90 * 24 * 3600


# A returning visitor sends the same cookie on every page: its signature is checked once per
# process, not once per request. Only good cookies are kept (a forged one costs its check every
# time), each until the age it would be refused at, and the memo is bounded.
_verified: dict[str, tuple[dict[str, str], float]] = {}
_VERIFIED_MAX = 50_000


def attribution_read(request) -> dict[str, str] | None:
    raw = request.COOKIES.get(COOKIE)
    if not raw:
        return None
    known = _verified.get(raw)
    if known is not None and known[1] > time.time():
        return dict(known[0])
    try:
        signed_at = _signed_at(raw)
        data = signing.loads(raw, salt=COOKIE, max_age=MAX_AGE)
    except (signing.BadSignature, ValueError):  # ValueError: a lone surrogate in the signature
        return None
    # A cookie signed before the input boundary existed may carry a NUL from its campaign
    # link: treat it as absent (the next page view replaces it) rather than store it.
    if not isinstance(data, dict) or data_problem(data):
        return None
    data = {k: v for k, v in data.items() if isinstance(v, str)}
    if len(_verified) >= _VERIFIED_MAX:
        _verified.clear()
    _verified[raw] = (data, signed_at + MAX_AGE)
    return dict(data)


def _signed_at(raw: str) -> float:
    """The time a signing.dumps value was made (its second-to-last field, base 62)."""
    try:
        return float(signing.b62_decode(raw.rsplit(":", 2)[-2]))
    except (IndexError, ValueError) as exc:
        raise signing.BadSignature("No timestamp") from exc


def attribution_capture(request, response) -> dict[str, str]:
    """Keep the first click's source; later visits do not overwrite it."""
    current = attribution_read(request)
    if current is not None:
        return current
    data = {
        # No personal data: a hash with a salt that rotates daily (analytics/pageviews.py).
        "visitor_id": pageviews.visitor_id_for(
            address=client_address(request), user_agent=request.META.get("HTTP_USER_AGENT", "")
        ),
        "source": text_or_empty(request.GET.get("utm_source", ""), max_length=100),
        "medium": text_or_empty(request.GET.get("utm_medium", ""), max_length=100),
        "campaign": text_or_empty(request.GET.get("utm_campaign", ""), max_length=100),
        "referrer": text_or_empty(request.META.get("HTTP_REFERER", ""), max_length=500),
    }
    response.set_cookie(
        COOKIE, signing.dumps(data, salt=COOKIE), max_age=MAX_AGE, httponly=True, samesite="Lax"
    )
    return data


def page_view_note(request, attribution: dict[str, str], *, product_id: int | None = None) -> None:
    """Count this view of a store or product page (robots and prefetches are not counted)."""
    meta = request.META
    if not pageviews.page_view_countable(
        user_agent=meta.get("HTTP_USER_AGENT", ""),
        sec_purpose=meta.get("HTTP_SEC_PURPOSE", ""),
        purpose=meta.get("HTTP_PURPOSE", ""),
        x_moz=meta.get("HTTP_X_MOZ", ""),
    ):
        return
    pageviews.page_view_record(
        visitor_id=attribution.get("visitor_id", ""),
        page=request.path,
        product_id=product_id,
        source=attribution.get("source", ""),
        medium=attribution.get("medium", ""),
        campaign=attribution.get("campaign", ""),
    )
