"""Recording store and product page views: once per visitor per page per window, without
bots or prefetches, without personal data.

A visitor is the first-party attribution cookie's random-looking id. When a browser arrives
without one, the id it gets is derived from a hash of (a salt that rotates daily and is kept
only in Redis for two days, the client's address, its User-Agent, the store): the same
browser gets the same id for the day even when it refuses cookies, the id cannot be turned
back into an address once the salt is gone, and nothing leaves the store's own domain. No
cookie banner is needed for that (no personal data, first-party, needed for the store's own
attribution); docs/metrics.md says so.

Cheap: a repeated view costs one Redis `SET NX EX` (cache.add) and nothing in PostgreSQL;
the first view in the window appends one event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import secrets

from django.core.cache import cache
from django.db import connection

from analytics.models import EventName
from analytics.services import event_append

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 30 * 60  # one view per visitor per page per half hour
SALT_SECONDS = 2 * 24 * 3600
# Self-declared robots, link unfurlers, monitors and HTTP libraries. A browser always sends a
# User-Agent, so an empty one is not a visitor either.
BOT_AGENT = re.compile(
    r"bot|crawl|spider|slurp|archiver|facebookexternalhit|embedly|preview|monitor|pingdom|"
    r"uptime|lighthouse|headless|phantomjs|curl/|wget/|python-|httpx|aiohttp|okhttp|"
    r"go-http-client|java/|libwww|httpclient|scrapy",
    re.IGNORECASE,
)
_salts: dict[tuple[str, str], str] = {}


def page_view_countable(*, user_agent: str, sec_purpose: str = "", purpose: str = "",
                        x_moz: str = "") -> bool:
    """False for robots and for prefetches/prerenders (`Sec-Purpose: prefetch`,
    `Purpose: prefetch`, `X-Moz: prefetch`): the page was fetched, nobody saw it."""
    if any("prefetch" in h.lower() for h in (sec_purpose, purpose, x_moz)):
        return False
    return bool(user_agent.strip()) and not BOT_AGENT.search(user_agent)


def _daily_salt() -> str:
    day = dt.datetime.now(dt.UTC).date().isoformat()
    key = (connection.schema_name, day)
    salt = _salts.get(key)
    if salt is None:
        salt = cache.get_or_set(f"pageview-salt:{day}", secrets.token_hex(16), SALT_SECONDS)
        _salts.clear()  # yesterday's salt is not kept in this process either
        _salts[key] = salt
    return salt


def visitor_id_for(*, address: str, user_agent: str) -> str:
    """A new visitor's id: 16 hex digits of SHA-256 over (daily salt, address, UA, store)."""
    raw = "\x1f".join((_daily_salt(), address, user_agent[:300], connection.schema_name))
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def page_view_record(*, visitor_id: str, page: str, product_id: int | None = None,
                     source: str = "", medium: str = "", campaign: str = "") -> bool:
    """Append PAGE_VIEWED unless this visitor saw this page in the window; True if appended.
    Never raises: a page is served whether or not its view could be recorded."""
    if not visitor_id:
        return False
    key = "pageview:" + hashlib.sha256(f"{visitor_id}\x1f{page}".encode()).hexdigest()[:24]
    try:
        if not cache.add(key, 1, WINDOW_SECONDS):  # seen in the window, or Redis is down
            return False
        event_append(EventName.PAGE_VIEWED, visitor_id=visitor_id, product_id=product_id,
                     source=source, medium=medium, campaign=campaign,
                     properties={"page": page[:200]})
    except Exception:
        logger.exception("page view not recorded")
        return False
    return True
