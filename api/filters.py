"""Small pieces shared by the partner API: the JSON 404, pagination and query filters.

Every query parameter is checked the way the schema describes it, so a value the schema
allows is answered and any other is a 400 with the error body; nothing unchecked reaches
PostgreSQL (where a bad value would be a 500).
"""

from __future__ import annotations

import datetime as dt

import django_filters
from django import forms
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django_filters.fields import IsoDateTimeField
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.filters import OrderingFilter, SearchFilter
from rest_framework.pagination import CursorPagination, LimitOffsetPagination
from rest_framework.settings import api_settings

from api.errors import error_body

MAX_ID = 2**63 - 1  # bigint


# Exempt like every DRF view: the API has no cookies to protect, and a POST to an unknown path
# must get this JSON 404, not the CSRF middleware's HTML 403.
@csrf_exempt
def not_found(request, *args, **kwargs) -> JsonResponse:
    return JsonResponse(error_body("not_found", "No such API endpoint."), status=404)


def _query_int(request, name: str, *, minimum: int, maximum: int, default: int) -> int:
    raw = query_params_once(request, [name]).get(name)
    if raw is None:
        return default
    field = serializers.IntegerField(min_value=minimum, max_value=maximum)
    try:
        return field.run_validation(raw)
    except serializers.ValidationError as exc:
        raise serializers.ValidationError({name: exc.detail}) from exc


def _int_param(name: str, description: str, minimum: int, maximum: int) -> dict:
    return {
        "name": name,
        "required": False,
        "in": "query",
        "description": description,
        "schema": {"type": "integer", "minimum": minimum, "maximum": maximum},
    }


class BoundedLimitOffset(LimitOffsetPagination):
    """limit 1–200 and offset 0–10⁹, both integers; anything else is a 400, not a guess."""

    max_limit = 200
    max_offset = 10**9

    def get_limit(self, request):
        return _query_int(
            request,
            self.limit_query_param,
            minimum=1,
            maximum=self.max_limit,
            default=self.default_limit,
        )

    def get_offset(self, request):
        return _query_int(
            request, self.offset_query_param, minimum=0, maximum=self.max_offset, default=0
        )

    def get_schema_operation_parameters(self, view):
        return [
            _int_param(self.limit_query_param, "Rows per page.", 1, self.max_limit),
            _int_param(self.offset_query_param, "Rows to skip.", 0, self.max_offset),
        ]


class BoundedCursor(CursorPagination):
    """Cursor pages of 1–200 rows; a malformed page size is a 400 (a bad cursor is a 404)."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request):
        return _query_int(
            request,
            self.page_size_query_param,
            minimum=1,
            maximum=self.max_page_size,
            default=self.page_size,
        )

    def get_schema_operation_parameters(self, view):
        cursor, _ = super().get_schema_operation_parameters(view)
        return [
            cursor,
            _int_param(self.page_size_query_param, "Rows per page.", 1, self.max_page_size),
        ]


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_ID})
class IdFilter(django_filters.NumberFilter):
    """A row id: a whole number in bigint range ("1.5" and "1e99" are 400s)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class _UtcDateTimeField(IsoDateTimeField):
    def clean(self, value):
        value = super().clean(value)
        if value is None:
            return None
        try:
            return value.astimezone(dt.UTC)
        except OverflowError:
            # 0001-01-01T00:00+05:00 is before anything Python (or this store) has: the
            # bound is the earliest (or latest) instant there is, not an error.
            limit = dt.datetime.min if value.year == dt.MINYEAR else dt.datetime.max
            return limit.replace(tzinfo=dt.UTC)


class UtcDateTimeField(serializers.DateTimeField):
    """A serializer's date-time with the same rule as BoundedDateTimeFilter."""

    def enforce_timezone(self, value):
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        try:
            return value.astimezone(dt.UTC)
        except OverflowError:
            limit = dt.datetime.min if value.year == dt.MINYEAR else dt.datetime.max
            return limit.replace(tzinfo=dt.UTC)


class BoundedDateTimeFilter(django_filters.IsoDateTimeFilter):
    """Any ISO 8601 date-time (years 1–9999, as the schema's `date-time` allows), compared
    in UTC; what is not one is a 400."""

    field_class = _UtcDateTimeField


def query_params_once(request, names) -> dict[str, str]:
    """The query parameters in `names` as a plain dict: each may be given once, and an empty
    value is a value (so `?start=` is checked, not read as "not given")."""
    values: dict[str, str] = {}
    for name in names:
        given = request.query_params.getlist(name)
        if len(given) > 1:
            raise serializers.ValidationError({name: ["Give this parameter at most once."]})
        if given:
            values[name] = given[0]
    return values


class QueryParamsCheck:
    """First of the filter backends: the list's documented single-valued parameters (filters,
    search, ordering, paging) may each be given once, and only a text filter may be empty.
    Without it `?offset=1&offset=x` or `?created_after=` would be quietly read as something."""

    def filter_queryset(self, request, queryset, view):
        names: dict[str, bool] = {}  # name → may be empty
        filterset = getattr(view, "filterset_class", None)
        backends = getattr(view, "filter_backends", [])
        if filterset is not None and any(issubclass(b, DjangoFilterBackend) for b in backends):
            for name, flt in filterset.base_filters.items():
                if not isinstance(flt, django_filters.MultipleChoiceFilter):
                    names[name] = type(flt) is django_filters.CharFilter
        if getattr(view, "search_fields", None) and SearchFilter in backends:
            names[api_settings.SEARCH_PARAM] = True
        if OrderingFilter in backends:
            names[api_settings.ORDERING_PARAM] = True
        paginator = getattr(view, "paginator", None)
        for param in ("limit_query_param", "offset_query_param", "page_size_query_param"):
            if getattr(paginator, param, None):
                names[getattr(paginator, param)] = False
        if getattr(paginator, "cursor_query_param", None):
            names[paginator.cursor_query_param] = True  # an empty cursor is the first page
        for name, value in query_params_once(request, names).items():
            if value == "" and not names[name]:
                raise serializers.ValidationError({name: ["Give a value or leave it out."]})
        return queryset

    def get_schema_operation_parameters(self, view):
        return []
