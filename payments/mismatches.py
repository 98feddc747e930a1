"""Findings that do not add up (reconciliation, duplicate charges): recorded once, resolved once."""

from __future__ import annotations

from django.utils import timezone

from payments.models import Mismatch


def mismatch_record(*, kind: str, gateway_ref: str, reference: str = "", detail: str) -> None:
    """Flag something that does not add up, once per (kind, gateway object), race-free."""
    Mismatch.objects.bulk_create(
        [Mismatch(kind=kind, gateway_ref=gateway_ref, reference=reference, detail=detail[:2000])],
        ignore_conflicts=True,
    )


def mismatches_resolve(*, ids: list[int]) -> int:
    """Mark findings resolved. One conditional UPDATE: a finding already resolved keeps its
    first resolution time."""
    return Mismatch.objects.filter(pk__in=ids, resolved_at__isnull=True).update(
        resolved_at=timezone.now()
    )
