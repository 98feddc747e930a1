"""Partner API: the store's payout account state and its transfers (read only).

Shapes come from `payments.public`, the same dicts the `account.updated` and
`transfer.created` webhooks carry. The tenant is the request's schema (django-tenants), so a
key only ever reads its own store's rows."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from api.filters import BoundedCursor, BoundedDateTimeFilter, QueryParamsCheck
from api.reads import ReplicaReads
from payments.connect import payout_account_current
from payments.models import TransferAttempt, TransferStatus
from payments.public import account_state, transfer_public


class PayoutAccountOut(serializers.Serializer):
    connected = serializers.BooleanField(help_text="The store has a connected account.")
    charges_enabled = serializers.BooleanField()
    payouts_enabled = serializers.BooleanField()
    details_submitted = serializers.BooleanField()
    requirements_due = serializers.ListField(
        child=serializers.CharField(), help_text="What the gateway still needs, by field name."
    )
    disabled_reason = serializers.CharField(allow_blank=True)
    updated_at = serializers.DateTimeField(
        allow_null=True, help_text="When the state was last read from the gateway."
    )


class TransferOut(serializers.Serializer):
    id = serializers.IntegerField()
    reference = serializers.CharField(help_text='The charge\'s reference, e.g. "order:42".')
    charge_ref = serializers.CharField(
        allow_blank=True, help_text="The gateway's charge the transfer is paid from."
    )
    gross = serializers.IntegerField(help_text="The charge, minor units.")
    fee = serializers.IntegerField(help_text="The platform's fee, minor units.")
    amount = serializers.IntegerField(help_text="gross − fee: what the store receives.")
    currency = serializers.CharField()
    status = serializers.ChoiceField(choices=TransferStatus.choices)
    transfer_ref = serializers.CharField(
        allow_blank=True, help_text="The gateway's transfer, once it has succeeded."
    )
    created_at = serializers.DateTimeField()

    def to_representation(self, instance):
        return transfer_public(instance)


class TransferFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=TransferStatus.choices)
    created_after = BoundedDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = BoundedDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = TransferAttempt
        fields = ["status", "currency"]


class TransferCursor(BoundedCursor):
    ordering = ("-created_at", "-id")


class TransferViewSet(
    ReplicaReads, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """The store's share of each settled charge, newest first."""

    serializer_class = TransferOut
    filterset_class = TransferFilter
    pagination_class = TransferCursor
    filter_backends = [QueryParamsCheck, django_filters.rest_framework.DjangoFilterBackend]

    def get_queryset(self):
        return TransferAttempt.objects.select_related("charge_attempt")


class PayoutViewSet(viewsets.GenericViewSet):
    filter_backends: list = []
    pagination_class = None
    serializer_class = PayoutAccountOut

    @extend_schema(
        responses=PayoutAccountOut,
        filters=False,
        description="The store's payout account as last read from the gateway.",
    )
    @action(detail=False, methods=["get"])
    def account(self, request):
        return Response(account_state(payout_account_current()))
