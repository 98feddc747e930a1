"""Partner API authentication: a store API key in `Authorization: Bearer …` (wired in
REST_FRAMEWORK). Scopes, rate limits and `actor_of` are in `api.auth`."""
from __future__ import annotations

from django.db import connection
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from audit.services import Actor
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


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "partners.api.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "A store API key (sfk_…), created in the store's admin."}
