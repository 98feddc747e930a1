"""Writing the audit trail: `audit_record` is the one way in."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.http import HttpRequest

from audit.models import AuditEntry
from core.logging import redact
from core.ratelimit import client_ip

_SECRET_FIELD = re.compile(r"(?i)(password|secret|token|api_?key|key_hash|signing|card_number|cvc)")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted, when it was not a request by a logged-in user (API key, task, command)."""

    kind: str  # AuditEntry.ActorKind
    id: str = ""
    label: str = ""
    ip_address: str | None = None
    user_agent: str = ""

    @classmethod
    def system(cls, label: str) -> Actor:
        return cls(AuditEntry.ActorKind.SYSTEM, label=label)

    @classmethod
    def api_key(cls, *, key_id: Any, label: str, request: HttpRequest | None = None) -> Actor:
        return cls(
            AuditEntry.ActorKind.API_KEY,
            id=str(key_id),
            label=label,
            ip_address=client_ip(request) if request is not None else None,
            user_agent=_user_agent(request),
        )


def _user_agent(request: HttpRequest | None) -> str:
    if request is None:
        return ""
    return request.META.get("HTTP_USER_AGENT", "")[:300]


def _user_actor(user, request: HttpRequest | None = None) -> Actor:
    if user is None or not getattr(user, "is_authenticated", False):
        return Actor(
            AuditEntry.ActorKind.ANONYMOUS,
            ip_address=client_ip(request) if request is not None else None,
            user_agent=_user_agent(request),
        )
    return Actor(
        AuditEntry.ActorKind.USER,
        id=str(user.pk),
        label=user.get_username(),
        ip_address=client_ip(request) if request is not None else None,
        user_agent=_user_agent(request),
    )


def actor_resolve(request_or_actor: HttpRequest | Actor | models.Model | str) -> Actor:
    if isinstance(request_or_actor, Actor):
        return request_or_actor
    if isinstance(request_or_actor, str):
        return Actor.system(request_or_actor)
    if isinstance(request_or_actor, HttpRequest):
        request = request_or_actor
        explicit = getattr(request, "audit_actor", None)  # set by API-key authentication
        if isinstance(explicit, Actor):
            return explicit
        return _user_actor(getattr(request, "user", None), request)
    if hasattr(request_or_actor, "get_username"):
        return _user_actor(request_or_actor)
    raise TypeError(f"cannot tell who acted from {type(request_or_actor).__name__}")


def _json_safe(value: Any) -> Any:
    if isinstance(value, models.fields.files.FieldFile):
        return value.name or ""
    if isinstance(value, models.Model):
        return value.pk
    return value


class _Encoder(DjangoJSONEncoder):
    def default(self, o):
        safe = _json_safe(o)
        return safe if safe is not o else super().default(o)


def _clean(changes: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe, secrets masked by field name, card numbers and keys redacted in strings."""

    def walk(key: str, value: Any) -> Any:
        if key and _SECRET_FIELD.search(key):
            return "[REDACTED]"
        if isinstance(value, dict):
            return {str(k): walk(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [walk(key if not isinstance(v, dict) else "", v) for v in value]
        if isinstance(value, str):
            return redact(value)
        return value

    encoded = json.loads(json.dumps(changes, cls=_Encoder))
    return walk("", encoded)


def model_snapshot(obj: models.Model) -> dict[str, Any]:
    """The concrete field values of `obj` (foreign keys as ids), ready for a diff."""
    return {
        field.attname: _json_safe(field.value_from_object(obj))
        for field in obj._meta.concrete_fields
    }


def audit_diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """{field: [old, new]} for every field whose value changed."""
    return {
        name: [before.get(name), after.get(name)]
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    }


def audit_record(
    *,
    request_or_actor: HttpRequest | Actor | models.Model | str,
    action: str,
    obj: models.Model | None = None,
    changes: dict[str, Any] | None = None,
    summary: str = "",
    object_type: str = "",
    object_id: str = "",
) -> AuditEntry:
    """Append one audit row in the current schema and transaction.

    Call it inside the transaction that makes the change: if the change rolls back, so does
    its audit row, and a committed change always has one.
    """
    actor = actor_resolve(request_or_actor)
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or ("" if obj.pk is None else str(obj.pk))
    return AuditEntry.objects.create(
        actor_kind=actor.kind,
        actor_id=actor.id[:64],
        actor_label=actor.label[:150],
        action=action[:100],
        object_type=object_type[:100],
        object_id=str(object_id)[:64],
        object_repr=redact(str(obj))[:200] if obj is not None else "",
        summary=redact(summary)[:300],
        changes=_clean(changes or {}),
        ip_address=actor.ip_address,
        user_agent=actor.user_agent[:300],
    )


def audited_create(
    *, model: type[models.Model], actor: Actor, data: dict[str, Any], action: str, summary: str
) -> models.Model:
    """Create a row and its audit entry in one transaction (the entry lists every field)."""
    from django.db import transaction

    with transaction.atomic():
        obj = model.objects.create(**data)
        audit_record(
            request_or_actor=actor,
            action=action,
            obj=obj,
            changes=audit_diff({}, model_snapshot(obj)),
            summary=summary.format(obj=obj),
        )
    return obj


def audited_update(
    *, obj: models.Model, actor: Actor, data: dict[str, Any], action: str, summary: str
) -> models.Model:
    """Change a row under a lock; an audit entry with the diff, only if something changed."""
    from django.db import transaction

    with transaction.atomic():
        locked = type(obj).objects.select_for_update().get(pk=obj.pk)
        before = model_snapshot(locked)
        for name, value in data.items():
            setattr(locked, name, value)
        locked.save()
        changes = audit_diff(before, model_snapshot(locked))
        if changes:
            audit_record(
                request_or_actor=actor,
                action=action,
                obj=locked,
                changes=changes,
                summary=summary.format(obj=locked),
            )
    return locked
