"""Partner API: products (the ladder), customers, orders with lines, refunds."""

from __future__ import annotations

import django_filters
from django.db import IntegrityError
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from api.auth import actor_of
from api.errors import ApiError
from api.filters import BoundedDateTimeFilter, IdFilter
from api.reads import ReplicaReads
from api.schema import IDEMPOTENCY_HEADER
from core.money import Money
from partners.api.idempotency import idempotent
from storefront.api import selectors, services
from storefront.api.serializers import (
    CustomerOut,
    LadderIn,
    OrderOut,
    PrivacyRequestIn,
    PrivacyRequestOut,
    ProductIn,
    ProductOut,
    RefundIn,
    RefundOut,
)
from storefront.models import Customer, Order, OrderStatus, PrivacyRequest, Product
from storefront.privacy import services as privacy
from storefront.services.refunds import RefundRefused, order_line_refund


class ReadOnly(
    ReplicaReads, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    pass


class ProductFilter(django_filters.FilterSet):
    class Meta:
        model = Product
        fields = ["status", "tier", "currency"]


class ProductViewSet(ReadOnly, mixins.CreateModelMixin, mixins.UpdateModelMixin):
    """The creator's products, lowest rung of the ladder first. A write key may add products,
    change them (price, status, `ladder_position`) and reorder the whole ladder at once."""

    serializer_class = ProductOut
    filterset_class = ProductFilter
    search_fields = ["name", "slug"]
    ordering_fields = ["ladder_position", "price_amount", "created_at", "id"]
    ordering = ["ladder_position", "id"]

    def get_queryset(self):
        return selectors.product_list()

    def get_serializer_class(self):
        if self.action in ("create", "update", "partial_update"):
            return ProductIn
        if self.action == "reorder":
            return LadderIn
        return ProductOut

    def _save(self, perform) -> Product:
        try:
            return perform()
        except IntegrityError as exc:  # a concurrent request took the slug first
            raise ApiError(
                "product_conflict",
                "Another product has this slug.",
                status_code=409,
                fields={"slug": ["Already taken."]},
            ) from exc

    @extend_schema(request=ProductIn, responses={201: ProductOut})
    def create(self, request, *args, **kwargs):
        data = ProductIn(data=request.data)
        data.is_valid(raise_exception=True)
        product = self._save(
            lambda: services.product_create(actor=actor_of(request), data=data.validated_data)
        )
        return Response(ProductOut(product).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ProductIn, responses=ProductOut)
    def update(self, request, *args, **kwargs):
        product = self.get_object()
        data = ProductIn(product, data=request.data, partial=kwargs.pop("partial", False))
        data.is_valid(raise_exception=True)
        product = self._save(
            lambda: services.product_update(
                actor=actor_of(request), product=product, data=data.validated_data
            )
        )
        return Response(ProductOut(product).data)

    @extend_schema(request=ProductIn, responses=ProductOut)
    def partial_update(self, request, *args, **kwargs):
        kwargs["partial"] = True
        return self.update(request, *args, **kwargs)

    @extend_schema(
        request=LadderIn,
        responses=ProductOut(many=True),
        description="Reorder the whole ladder: every product id once, lowest rung "
        "first. Positions become 1, 2, 3, …",
    )
    @action(detail=False, methods=["post"], filter_backends=[], pagination_class=None)
    def reorder(self, request):
        data = LadderIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            products = services.ladder_reorder(
                actor=actor_of(request), product_ids=data.validated_data["product_ids"]
            )
        except services.LadderRefused as exc:
            raise ApiError(
                "ladder_incomplete", str(exc), fields={"product_ids": [str(exc)]}
            ) from exc
        return Response(ProductOut(products, many=True).data)


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
    customer = IdFilter(field_name="customer_id")
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
    @extend_schema(
        methods=["POST"],
        request=RefundIn,
        responses={201: RefundOut},
        parameters=[IDEMPOTENCY_HEADER],
        description="Refund part or all of one line of this order. Needs a write "
        "key and an Idempotency-Key header.",
    )
    @action(detail=True, methods=["get", "post"], filter_backends=[], pagination_class=None)
    def refunds(self, request, pk=None):
        order = self.get_object()
        if request.method == "GET":
            lines = {line.line_key: line.pk for line in order.lines.all()}
            return Response(
                RefundOut(
                    selectors.order_refunds(order=order), many=True, context={"lines_by_key": lines}
                ).data
            )

        def perform(gateway_key: str) -> Response:
            data = RefundIn(data=request.data)
            data.is_valid(raise_exception=True)
            line = order.lines.filter(pk=data.validated_data["line_id"]).first()
            if line is None:
                raise ApiError(
                    "line_not_found",
                    "This order has no such line.",
                    fields={"line_id": ["Not a line of this order."]},
                )
            amount = data.validated_data.get("amount")
            try:
                outcome = order_line_refund(
                    order=order,
                    line=line,
                    amount=Money(amount, line.currency) if amount else None,
                    reason=data.validated_data["reason"],
                    actor=actor_of(request),
                    requested_by=str(request.user),
                    idempotency_key=gateway_key,
                    channel=" through the API",
                )
            except RefundRefused as exc:
                raise ApiError("refund_refused", str(exc), status_code=409) from exc
            [refund] = outcome.refunds
            return Response(RefundOut(refund).data, status=status.HTTP_201_CREATED)

        return idempotent(request, self, perform)


class PrivacyRequestViewSet(ReadOnly):
    """Buyers' data requests: `POST` an export or an erasure for an address (a write key and an
    Idempotency-Key), then read its state; a done export carries its document. The answer is
    the same whether or not the store knows the address."""

    serializer_class = PrivacyRequestOut
    ordering_fields = ["requested_at", "id"]
    ordering = ["-requested_at", "-id"]
    filterset_fields = ["kind", "state"]

    def get_queryset(self):
        return PrivacyRequest.objects.all()

    def get_serializer_class(self):
        return PrivacyRequestIn if self.action == "create" else PrivacyRequestOut

    @extend_schema(
        request=PrivacyRequestIn,
        responses={202: PrivacyRequestOut},
        parameters=[IDEMPOTENCY_HEADER],
        description="Record an export or erasure request for a buyer's address; it runs in "
        "the background. Needs a write key and an Idempotency-Key header.",
    )
    def create(self, request, *args, **kwargs):
        def perform(_gateway_key: str) -> Response:
            data = PrivacyRequestIn(data=request.data)
            data.is_valid(raise_exception=True)
            try:
                row = privacy.privacy_request_create(
                    email=data.validated_data["email"],
                    kind=data.validated_data["kind"],
                    channel="api",
                    requested_by=str(request.user),
                    actor=actor_of(request),
                )
            except privacy.PrivacyRequestRefused as exc:
                raise ApiError("invalid_email", str(exc), fields={"email": [str(exc)]}) from exc
            row.refresh_from_db()
            return Response(PrivacyRequestOut(row).data, status=status.HTTP_202_ACCEPTED)

        return idempotent(request, self, perform)
