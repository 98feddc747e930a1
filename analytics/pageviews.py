"""Recording store and product page views: once per visitor per page per window, without
bots or prefetches, without personal data.

A visitor is the first-party attribution cookie's random-looking id. When a browser arrives
without one, the id it gets is derived from a hash of (a salt that rotates daily and is kept
only in Redis for two days, the client's address, its User-Agent, the store): the same
browser gets the same id for the day even when it refuses cookies, the id cannot be turned
back into an address once the salt is gone, and nothing leaves the store's own domain. No
cookie banner is needed for that (no personal data, first-party, needed for the store's own
attribution); docs/metrics.md says so.

Cheap: one Redis round trip per view at most, nothing in PostgreSQL. A small script does
`SET NX EX` on the (visitor, page) key and, only when it was not set, `RPUSH`es the view on
the store's page-view queue; a worker also remembers the keys it saw in the window, so a
reload served by the same process costs no round trip at all. `page_views_flush` moves the
queue into the event log in batches. Every `rollups_refresh`
flushes first (the beat's every 5 minutes, and the dashboard's and the partner API's before
they read), so the figures never miss a view that was made before the request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import secrets
import time

from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from analytics.models import Event, EventName

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 30 * 60  # one view per visitor per page per half hour
SALT_SECONDS = 2 * 24 * 3600
QUEUE = "pageviews:queue"  # per store: cache.make_key adds the schema
MAX_QUEUED = 200_000  # if nothing flushes for a long time, the oldest views are dropped
# Self-declared robots, link unfurlers, monitors and HTTP libraries. A browser always sends a
# User-Agent, so an empty one is not a visitor either.
BOT_AGENT = re.compile(
    r"bot|crawl|spider|slurp|archiver|facebookexternalhit|embedly|preview|monitor|pingdom|"
    r"uptime|lighthouse|headless|phantomjs|curl/|wget/|python-|httpx|aiohttp|okhttp|"
    r"go-http-client|java/|libwww|httpclient|scrapy",
    re.IGNORECASE,
)
SALT_LOCAL_SECONDS = 60  # a process re-reads the day's salt this often (all agree soon)
LOCAL_KEYS = 20_000
_salts: dict[tuple[str, str], tuple[str, float]] = {}
_seen: dict[str, float] = {}  # (visitor, page) keys this process saw → when they expire
# SET NX EX the dedupe key; queue the view only if it was not set. One round trip.
_RECORD = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
    redis.call('RPUSH', KEYS[2], ARGV[2])
    redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
    return 1
end
return 0
"""
_script = None


def local_state_clear() -> None:
    """Forget this process's salt and seen keys (tests that clear Redis call it)."""
    _salts.clear()
    _seen.clear()


def page_view_countable(
    *, user_agent: str, sec_purpose: str = "", purpose: str = "", x_moz: str = ""
) -> bool:
    """False for robots and for prefetches/prerenders (`Sec-Purpose: prefetch`,
    `Purpose: prefetch`, `X-Moz: prefetch`): the page was fetched, nobody saw it."""
    if any("prefetch" in h.lower() for h in (sec_purpose, purpose, x_moz)):
        return False
    return bool(user_agent.strip()) and not BOT_AGENT.search(user_agent)


def _daily_salt() -> str:
    day = dt.datetime.now(dt.UTC).date().isoformat()
    key = (connection.schema_name, day)
    salt, until = _salts.get(key, ("", 0.0))
    if time.monotonic() >= until:
        salt = cache.get_or_set(f"pageview-salt:{day}", secrets.token_hex(16), SALT_SECONDS)
        if len(_salts) > 1000 or any(d != day for _, d in _salts):
            _salts.clear()  # yesterday's salt is not kept in this process either
        _salts[key] = (salt, time.monotonic() + SALT_LOCAL_SECONDS)
    return salt


def visitor_id_for(*, address: str, user_agent: str) -> str:
    """A new visitor's id: 16 hex digits of SHA-256 over (daily salt, address, UA, store)."""
    raw = "\x1f".join((_daily_salt(), address, user_agent[:300], connection.schema_name))
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _redis():
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def page_view_record(
    *,
    visitor_id: str,
    page: str,
    product_id: int | None = None,
    source: str = "",
    medium: str = "",
    campaign: str = "",
) -> bool:
    """Queue a PAGE_VIEWED unless this visitor saw this page in the window; True if queued.
    Never raises: a page is served whether or not its view could be recorded."""
    global _script
    if not visitor_id:
        return False
    key = cache.make_key(
        "pageview:" + hashlib.sha256(f"{visitor_id}\x1f{page}".encode()).hexdigest()[:24]
    )
    now = time.monotonic()
    if _seen.get(key, 0.0) > now:
        return False  # this process saw it in the window
    view = json.dumps(
        {
            "at": timezone.now().isoformat(),
            "visitor_id": visitor_id,
            "product_id": product_id,
            "source": source,
            "medium": medium,
            "campaign": campaign,
            "page": page[:200],
        }
    )
    try:
        if _script is None:
            _script = _redis().register_script(_RECORD)
        queued = _script(keys=[key, cache.make_key(QUEUE)], args=[WINDOW_SECONDS, view, MAX_QUEUED])
    except Exception:
        logger.exception("page view not recorded")
        return False
    if len(_seen) >= LOCAL_KEYS:
        _seen.clear()
    _seen[key] = now + WINDOW_SECONDS
    return bool(queued)


def _event(raw: bytes) -> Event | None:
    try:
        view = json.loads(raw)
        return Event(
            name=EventName.PAGE_VIEWED,
            occurred_at=dt.datetime.fromisoformat(view["at"]),
            visitor_id=str(view["visitor_id"])[:64],
            product_id=view.get("product_id"),
            source=str(view.get("source", ""))[:100],
            medium=str(view.get("medium", ""))[:100],
            campaign=str(view.get("campaign", ""))[:100],
            properties={"page": str(view.get("page", ""))[:200]},
        )
    except (ValueError, TypeError, KeyError):
        logger.error("unreadable queued page view skipped: %r", raw[:200])
        return None


def page_views_flush(*, batch: int = 5000) -> int:
    """Move this store's queued page views into the event log; returns how many. Each batch
    is taken off the queue (LPOP count, atomic: two flushes never take the same view) and
    inserted in one transaction; if the insert fails the batch goes back on the queue."""
    queue, moved = cache.make_key(QUEUE), 0
    while True:
        try:
            taken = _redis().lpop(queue, batch) or []
        except Exception:
            logger.warning("page-view queue unavailable; views stay queued")
            return moved
        events = [e for e in map(_event, taken) if e is not None]
        try:
            with transaction.atomic():
                Event.objects.bulk_create(events)
        except Exception:
            _redis().lpush(queue, *reversed(taken))
            raise
        moved += len(events)
        if len(taken) < batch:
            return moved
