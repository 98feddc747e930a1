"""Partner API authentication: a store API key in `Authorization: Bearer …` (wired in
REST_FRAMEWORK). Scopes, rate limits and `actor_of` are in `api.auth`."""

from __future__ import annotations

import re

from django.conf import settings
from django.db import connection
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from audit.services import Actor
from core.ratelimit import Limit, Rate, client_address, ratelimit_peek, ratelimit_record
from partners.models import ApiKey
from partners.services import KEY_PATTERN, api_key_authenticate

# Query parameters that would carry a credential: URLs end up in access logs, proxies and
# browser history, so a key there is refused (and redacted from the log, core.access_log).
_CREDENTIAL_PARAMS = frozenset(
    {
        "api_key",
        "apikey",
        "api-key",
        "key",
        "token",
        "access_token",
        "auth",
        "authorization",
        "bearer",
    }
)
_KEY_RE = re.compile(KEY_PATTERN)
FAILURE_SCOPE = "api_auth_failure"


def _failure_limit(request) -> Limit:
    """Failed authentications per client address (per store, like every limit here)."""
    rate = Rate.parse(getattr(settings, "API_AUTH_FAILURE_RATE", "20/m"))
    return Limit("address", client_address(request), rate)


def _refuse_key_in_url(request) -> None:
    for name, values in request.query_params.lists():
        if name.lower() in _CREDENTIAL_PARAMS or any(_KEY_RE.search(v) for v in values):
            raise exceptions.AuthenticationFailed(
                "Send the API key in the Authorization header, never in the URL (URLs are "
                "logged); revoke a key that was sent in one.",
                code="key_in_url",
            )


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
        _refuse_key_in_url(request)
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        limit = _failure_limit(request._request)
        # An address that keeps sending wrong keys is told to wait before any key is checked.
        blocked = ratelimit_peek(scope=FAILURE_SCOPE, limits=[limit])
        if not blocked.allowed:
            raise exceptions.Throttled(
                wait=blocked.retry_after,
                detail="Too many failed authentications from this address.",
            )
        parts = header.split()
        key = None
        if len(parts) == 2 and parts[0] == self.keyword and connection.schema_name != "public":
            key = api_key_authenticate(token=parts[1])
        if key is None:
            ratelimit_record(scope=FAILURE_SCOPE, limits=[limit])
            if len(parts) != 2 or parts[0] != self.keyword:
                raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <API key>'.")
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        # audit.services.actor_resolve reads this from the Django request: an API action is
        # recorded as done by this key, never as an anonymous or staff user.
        request._request.audit_actor = api_actor(key, request._request)
        return ApiKeyPrincipal(key), key

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="api"'


def api_actor(key: ApiKey, http_request=None) -> Actor:
    return Actor.api_key(
        key_id=key.pk, label=f"apikey:{key.prefix} ({key.name})"[:150], request=http_request
    )


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "partners.api.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A store API key (sfk_…), created in the store's admin.",
        }
