"""Partner API authentication, scopes and per-key rate limits (wired in REST_FRAMEWORK)."""
from __future__ import annotations

from django.db import connection
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling

from audit.services import Actor
from core.ratelimit import Limit, Rate, ratelimit_hit
from partners.models import ApiKey
from partners.services import api_key_authenticate


class ApiKeyPrincipal:
    """request.user for a partner: the key, not a staff user."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_anonymous = False

    def __init__(self, key: ApiKey):
        self.key = key
        self.pk = None
        self.username = f"apikey:{key.prefix}"

    def __str__(self) -> str:
        return self.username


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer sfk_…`. Keys live in the creator's schema, so a key of another
    store is simply not found here."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0] != self.keyword:
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <API key>'.")
        if connection.schema_name == "public":
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        key = api_key_authenticate(token=parts[1])
        if key is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        # audit.services.actor_resolve reads this from the Django request: an API action is
        # recorded as done by this key, never as an anonymous or staff user.
        request._request.audit_actor = api_actor(key, request._request)
        return ApiKeyPrincipal(key), key

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="api"'


def api_actor(key: ApiKey, http_request=None) -> Actor:
    return Actor.api_key(key_id=key.pk, label=f"apikey:{key.prefix} ({key.name})"[:150],
                         request=http_request)


def actor_of(request) -> Actor:
    """Who acts in an authenticated API request (a DRF request or its Django request)."""
    http_request = getattr(request, "_request", request)
    actor = getattr(http_request, "audit_actor", None)
    if not isinstance(actor, Actor):
        raise RuntimeError("actor_of() needs a request authenticated with an API key")
    return actor


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "partners.api.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "A store API key (sfk_…), created in the store's admin."}


class HasKeyScope(permissions.BasePermission):
    """Read keys may read; write keys may also change things."""

    message = "This API key is read-only."

    def has_permission(self, request, view) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        return key.can_write


class ApiKeyThrottle(throttling.BaseThrottle):
    """A sliding window per store + key (Redis, core.ratelimit); 429 with Retry-After."""

    def __init__(self):
        self._wait = 0

    def allow_request(self, request, view) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            return True
        decision = ratelimit_hit(
            scope="partner_api",
            limits=[Limit("api_key", key.prefix, Rate(key.rate_per_minute, 60))],
        )
        self._wait = decision.retry_after
        return decision.allowed

    def wait(self):
        return max(1, self._wait)
