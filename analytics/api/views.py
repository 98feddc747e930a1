"""Partner API: the funnel event log (read only, cursor-paginated, newest first)."""
from __future__ import annotations

import django_filters
from rest_framework import mixins, serializers, viewsets
from rest_framework.pagination import CursorPagination

from analytics.models import Event, EventName
from partners.api.views import BoundedDateTimeFilter


class EventOut(serializers.ModelSerializer):
    class Meta:
        model = Event
        fields = ["id", "name", "occurred_at", "order_id", "customer_id", "offer_id",
                  "product_id", "variant", "source", "medium", "campaign", "amount",
                  "currency", "reason"]


class EventFilter(django_filters.FilterSet):
    name = django_filters.MultipleChoiceFilter(choices=EventName.choices)
    source = django_filters.CharFilter()
    order_id = django_filters.NumberFilter(min_value=1, max_value=2**63 - 1)
    offer_id = django_filters.NumberFilter(min_value=1, max_value=2**63 - 1)
    occurred_after = BoundedDateTimeFilter(field_name="occurred_at",
                                                      lookup_expr="gte")
    occurred_before = BoundedDateTimeFilter(field_name="occurred_at",
                                                       lookup_expr="lt")

    class Meta:
        model = Event
        fields = ["name", "source", "order_id", "offer_id"]


class EventCursor(CursorPagination):
    # A stable order on an append-only log: pages never skip or repeat rows as events arrive.
    ordering = ("-occurred_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class EventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = EventOut
    filterset_class = EventFilter
    pagination_class = EventCursor
    filter_backends = [django_filters.rest_framework.DjangoFilterBackend]

    def get_queryset(self):
        return Event.objects.all()
