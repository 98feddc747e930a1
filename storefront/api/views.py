"""Partner API: products (the ladder), customers, orders with lines, refunds."""
from __future__ import annotations

import django_filters

from partners.api.views import BoundedDateTimeFilter
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core.money import Money
from partners.api.errors import ApiError
from partners.api.idempotency import idempotent
from partners.api.schema import IDEMPOTENCY_HEADER
from payments.services import RefundRefused, refund_create
from storefront.api import selectors
from storefront.api.serializers import CustomerOut, OrderOut, ProductOut, RefundIn, RefundOut
from storefront.models import Customer, Order, OrderStatus, Product


class ReadOnly(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    pass


class ProductFilter(django_filters.FilterSet):
    class Meta:
        model = Product
        fields = ["status", "tier", "currency"]


class ProductViewSet(ReadOnly):
    """The creator's products, lowest rung of the ladder first."""

    serializer_class = ProductOut
    filterset_class = ProductFilter
    search_fields = ["name", "slug"]
    ordering_fields = ["ladder_position", "price_amount", "created_at", "id"]
    ordering = ["ladder_position", "id"]

    def get_queryset(self):
        return selectors.product_list()


class CustomerFilter(django_filters.FilterSet):
    email = django_filters.CharFilter(lookup_expr="iexact")
    created_after = BoundedDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = BoundedDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Customer
        fields = ["email"]


class CustomerViewSet(ReadOnly):
    serializer_class = CustomerOut
    filterset_class = CustomerFilter
    search_fields = ["email"]
    ordering_fields = ["created_at", "email", "id"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self):
        return selectors.customer_list()


class OrderFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=OrderStatus.choices)
    customer = django_filters.NumberFilter(field_name="customer_id", min_value=1,
                                           max_value=2**63 - 1)
    email = django_filters.CharFilter(field_name="customer__email", lookup_expr="iexact")
    utm_source = django_filters.CharFilter()
    created_after = BoundedDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = BoundedDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Order
        fields = ["status", "customer", "email", "utm_source", "currency"]


class OrderViewSet(ReadOnly):
    """Orders with their lines; refunds of a line through `POST /orders/{id}/refunds/`."""

    serializer_class = OrderOut
    filterset_class = OrderFilter
    search_fields = ["token", "customer__email"]
    ordering_fields = ["created_at", "paid_at", "id"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self):
        return selectors.order_list()

    def get_serializer_class(self):
        if self.action == "refunds":
            return RefundIn if self.request.method == "POST" else RefundOut
        return OrderOut

    @extend_schema(methods=["GET"], responses=RefundOut(many=True), filters=False)
    @extend_schema(methods=["POST"], request=RefundIn, responses={201: RefundOut},
                   parameters=[IDEMPOTENCY_HEADER],
                   description="Refund part or all of one line of this order. Needs a write "
                               "key and an Idempotency-Key header.")
    @action(detail=True, methods=["get", "post"], filter_backends=[], pagination_class=None)
    def refunds(self, request, pk=None):
        order = self.get_object()
        if request.method == "GET":
            return Response(RefundOut(selectors.order_refunds(order=order), many=True).data)

        def perform(gateway_key: str) -> Response:
            data = RefundIn(data=request.data)
            data.is_valid(raise_exception=True)
            line = order.lines.filter(pk=data.validated_data["line_id"]).first()
            if line is None:
                raise ApiError("line_not_found", "This order has no such line.",
                               fields={"line_id": ["Not a line of this order."]})
            amount = data.validated_data.get("amount")
            try:
                refund = refund_create(
                    reference=order.reference, line_key=line.line_key,
                    amount=Money(amount, line.currency) if amount else None,
                    reason=data.validated_data["reason"],
                    requested_by=str(request.user), idempotency_key=gateway_key,
                )
            except RefundRefused as exc:
                raise ApiError("refund_refused", str(exc), status_code=409) from exc
            return Response(RefundOut(refund).data, status=status.HTTP_201_CREATED)

        return idempotent(request, self, perform)
