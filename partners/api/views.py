"""Small views shared by the partner API."""
from django.http import JsonResponse

from partners.api.errors import error_body


def not_found(request, *args, **kwargs) -> JsonResponse:
    return JsonResponse(error_body("not_found", "No such API endpoint."), status=404)


from rest_framework.pagination import LimitOffsetPagination  # noqa: E402


class BoundedLimitOffset(LimitOffsetPagination):
    """limit ≤ 200, offset clamped to what PostgreSQL and any real store can have."""

    max_limit = 200
    max_offset = 10**9

    def get_offset(self, request):
        return min(super().get_offset(request), self.max_offset)


import datetime as _dt  # noqa: E402

import django_filters  # noqa: E402
from django import forms  # noqa: E402
from django_filters.fields import IsoDateTimeField  # noqa: E402


class _BoundedIsoDateTimeField(IsoDateTimeField):
    def clean(self, value):
        value = super().clean(value)
        if value is not None:
            try:
                value = value.astimezone(_dt.UTC)
            except (OverflowError, ValueError) as exc:
                raise forms.ValidationError("Date out of range.") from exc
            if not 1900 <= value.year <= 9000:
                raise forms.ValidationError("Date must be between 1900 and 9000.")
        return value


class BoundedDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 date-time between 1900 and 9000, so nonsense is a 400 and not a DB error."""

    field_class = _BoundedIsoDateTimeField
