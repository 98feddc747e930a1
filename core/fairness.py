"""Fairness between stores: a store may hold at most its share of the web server's request
slots at once (issue 20, item 8; docs/security.md "Fairness between stores").

Every store shares the same web processes. Without a bound, one client flooding store A with
as many connections as there are workers keeps every worker busy with A, and store B's
requests wait in the listen queue behind A's. `StoreConcurrencyMiddleware` (after tenant
routing) counts the requests each store has in flight across all processes, in Redis, and
answers a request that would take a store over `STORE_MAX_IN_FLIGHT` at once with 503 and
`Retry-After`, spending no more than the routing and one Redis call on it. The remaining
slots stay free for the other stores.

The count is a sorted set per store of (request id, start time): a request adds itself and
removes itself in `finally`; a process killed mid-request leaves an entry that stops counting
after `STORE_IN_FLIGHT_TTL_SECONDS` (the web server's own request timeout). If Redis is
unreachable the limit is not applied (and a warning logged), like the rate limits.

Static files (served by WhiteNoise before this middleware) and the health check (before
routing) are not counted.
"""

from __future__ import annotations

import logging
import secrets
import time

from django.conf import settings
from django.http import HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

# KEYS[1]: the store's set. ARGV: now_ms, ttl_ms, limit, member. Returns 1 if admitted.
_ACQUIRE = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""


def _redis():
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def _clock_ms() -> int:
    return int(time.time() * 1000)


def in_flight_key(schema: str) -> str:
    return f"fairness:in_flight:{schema}"


def store_limit() -> int:
    """Requests one store may have in flight at once; 0 means no limit."""
    return int(getattr(settings, "STORE_MAX_IN_FLIGHT", 0) or 0)


def slot_acquire(*, schema: str, limit: int) -> str | None:
    """A slot for one request of `schema` ("" when Redis is down: not limited), or None if the
    store already has `limit` requests in flight."""
    member = secrets.token_hex(8)
    ttl_ms = int(getattr(settings, "STORE_IN_FLIGHT_TTL_SECONDS", 60) * 1000)
    try:
        admitted = _redis().eval(
            _ACQUIRE, 1, in_flight_key(schema), _clock_ms(), ttl_ms, limit, member
        )
    except Exception as exc:  # Redis down: fail open, loudly
        logger.warning("fairness: Redis unavailable, not limiting %s: %s", schema, exc)
        return ""
    return member if admitted else None


def slot_release(*, schema: str, slot: str) -> None:
    if not slot:
        return
    try:
        _redis().zrem(in_flight_key(schema), slot)
    except Exception as exc:  # the entry ages out after the TTL
        logger.warning("fairness: Redis unavailable, slot of %s left to expire: %s", schema, exc)


def store_busy(request) -> HttpResponse:
    retry = str(int(getattr(settings, "STORE_BUSY_RETRY_AFTER_SECONDS", 1)))
    text = "This store is very busy right now. Please try again in a moment."
    if request.path.startswith("/api/") or "json" in request.headers.get("Accept", ""):
        response: HttpResponse = JsonResponse(
            {"error": "store_busy", "detail": text, "retry_after": int(retry)}, status=503
        )
    else:
        response = HttpResponse(text, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = retry
    return response


class StoreConcurrencyMiddleware:
    """Refuse a store's requests beyond its share of in-flight requests (503 + Retry-After)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = store_limit()
        tenant = getattr(request, "tenant", None)
        if limit <= 0 or tenant is None:
            return self.get_response(request)
        schema = tenant.schema_name
        slot = slot_acquire(schema=schema, limit=limit)
        if slot is None:
            logger.warning(
                "fairness: %s has %s requests in flight; refused %s %s",
                schema,
                limit,
                request.method,
                request.path[:200],
            )
            return store_busy(request)
        try:
            return self.get_response(request)
        finally:
            slot_release(schema=schema, slot=slot)
