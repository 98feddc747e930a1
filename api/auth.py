"""Who is acting in an API request, what a key may do, and per-key rate limits (wired in
REST_FRAMEWORK). The key itself is looked up by `partners.api.auth.ApiKeyAuthentication`;
these work on any principal it returns, so API views import them without importing partners."""

from __future__ import annotations

from rest_framework import permissions, throttling

from audit.services import Actor
from core.ratelimit import Limit, Rate, ratelimit_hit


def actor_of(request) -> Actor:
    """Who acts in an authenticated API request (a DRF request or its Django request)."""
    http_request = getattr(request, "_request", request)
    actor = getattr(http_request, "audit_actor", None)
    if not isinstance(actor, Actor):
        raise RuntimeError("actor_of() needs a request authenticated with an API key")
    return actor


class HasKeyScope(permissions.BasePermission):
    """Read keys may read; write keys may also change things."""

    message = "This API key is read-only."

    def has_permission(self, request, view) -> bool:
        key = request.auth
        if key is None or not hasattr(key, "can_write"):
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        return bool(key.can_write)


class ApiKeyThrottle(throttling.BaseThrottle):
    """A sliding window per store + key (Redis, core.ratelimit); 429 with Retry-After."""

    def __init__(self):
        self._wait = 0

    def allow_request(self, request, view) -> bool:
        key = request.auth
        if key is None or not hasattr(key, "rate_per_minute"):
            return True
        decision = ratelimit_hit(
            scope="partner_api",
            limits=[Limit("api_key", key.prefix, Rate(key.rate_per_minute, 60))],
        )
        self._wait = decision.retry_after
        return decision.allowed

    def wait(self):
        return max(1, self._wait)
