"""Partner API: the store's subscriptions and payment plans (list, read, cancel).

The shape is `subscriptions.public.subscription_public`, the same dict the `subscription.*`
webhooks carry. Cancelling needs a write key and an Idempotency-Key header."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from api.auth import actor_of
from api.errors import ApiError
from api.filters import BoundedCursor, BoundedDateTimeFilter, IdFilter, QueryParamsCheck
from api.reads import ReplicaReads
from api.schema import IDEMPOTENCY_HEADER
from audit.services import audit_record
from partners.api.idempotency import idempotent
from subscriptions import services
from subscriptions.models import PlanKind, Subscription, SubscriptionStatus
from subscriptions.public import subscription_public


class SubscriptionOut(serializers.Serializer):
    id = serializers.IntegerField()
    customer_id = serializers.IntegerField()
    product_id = serializers.IntegerField()
    order_id = serializers.IntegerField(allow_null=True)
    kind = serializers.ChoiceField(choices=PlanKind.choices)
    status = serializers.ChoiceField(choices=SubscriptionStatus.choices)
    interval = serializers.DictField(help_text='{"unit": "month", "count": 1}')
    instalments = serializers.IntegerField(allow_null=True)
    amount = serializers.IntegerField(help_text="Each period's charge, tax included, minor units.")
    currency = serializers.CharField()
    trial_ends_at = serializers.DateTimeField(allow_null=True)
    next_charge_at = serializers.DateTimeField(allow_null=True)
    paid_through = serializers.DateTimeField(allow_null=True)
    cancel_at_period_end = serializers.BooleanField()
    ended_at = serializers.DateTimeField(allow_null=True)
    end_reason = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()

    def to_representation(self, instance):
        return subscription_public(instance)


class CancelIn(serializers.Serializer):
    when = serializers.ChoiceField(
        choices=[("period_end", "at the end of the paid period"), ("now", "at once")],
        default="period_end",
    )


class SubscriptionFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=SubscriptionStatus.choices)
    kind = django_filters.ChoiceFilter(choices=PlanKind.choices)
    customer = IdFilter(field_name="customer_id")
    product = IdFilter(field_name="product_id")
    created_after = BoundedDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = BoundedDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Subscription
        fields = ["status", "kind", "currency"]


class SubscriptionCursor(BoundedCursor):
    ordering = ("-created_at", "-id")


class SubscriptionViewSet(
    ReplicaReads, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Subscriptions and payment plans, newest first."""

    serializer_class = SubscriptionOut
    filterset_class = SubscriptionFilter
    pagination_class = SubscriptionCursor
    filter_backends = [QueryParamsCheck, django_filters.rest_framework.DjangoFilterBackend]

    def get_queryset(self):
        return Subscription.objects.all()

    def get_serializer_class(self):
        return CancelIn if self.action == "cancel" else SubscriptionOut

    @extend_schema(
        request=CancelIn,
        responses={200: SubscriptionOut},
        parameters=[IDEMPOTENCY_HEADER],
        filters=False,
        description="Cancel at the end of the paid period (`when=period_end`, the default) or "
        "at once (`when=now`: access stops). Needs a write key and an Idempotency-Key header.",
    )
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def cancel(self, request, pk=None):
        sub = self.get_object()

        def perform(_gateway_key: str) -> Response:
            data = CancelIn(data=request.data)
            data.is_valid(raise_exception=True)
            by = f"api:{request.user}"
            try:
                if data.validated_data["when"] == "now":
                    moved = services.subscription_cancel_now(subscription_id=sub.pk, by=by)
                    if not moved:
                        raise services.SubscriptionRefused("This subscription has already ended.")
                else:
                    services.subscription_cancel_at_period_end(subscription_id=sub.pk, by=by)
            except services.SubscriptionRefused as exc:
                raise ApiError("subscription_refused", exc.message, status_code=409) from exc
            audit_record(
                request_or_actor=actor_of(request),
                action="subscriptions.cancel",
                obj=sub,
                changes={"when": data.validated_data["when"]},
                summary=f"Cancelled subscription {sub.pk} through the API",
            )
            sub.refresh_from_db()
            return Response(subscription_public(sub), status=status.HTTP_200_OK)

        return idempotent(request, self, perform)
