"""Partner API: offers (bumps, upsells, downsells, cross-sells) with the pricing guardrails."""

from __future__ import annotations

import django_filters
from django.db import IntegrityError
from django.db.models import ProtectedError
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from api.auth import actor_of
from api.errors import ApiError
from api.filters import IdFilter
from api.reads import ReplicaReads
from core.money import Money
from offers.api import services
from offers.api.serializers import OfferIn, OfferOut, OfferWithWarnings, PauseIn
from offers.models import Offer, OfferKind
from offers.services import offer_pause, offer_price_check, offer_resume


class OfferFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=OfferKind.choices)
    status = django_filters.ChoiceFilter(choices=Offer.Status.choices)
    trigger_product = IdFilter(field_name="trigger_product_id")

    class Meta:
        model = Offer
        fields = ["kind", "status", "trigger_product"]


def _guardrails(data: dict, instance: Offer | None) -> list[str]:
    """Warnings to show; raises on a refusal (above 50% of the cart without the override)."""
    trigger = data.get("trigger_product") or instance.trigger_product
    price = data.get("price_amount", instance.price_amount if instance else None)
    currency = data.get("currency") or (instance.currency if instance else trigger.currency)
    allow = data.get("allow_high_price", instance.allow_high_price if instance else False)
    if currency != trigger.currency:
        return []
    product = data.get("product") or (instance.product if instance else None)
    check = offer_price_check(
        offer_price=Money(price, currency),
        core_price=trigger.price,
        allow_high_price=allow,
        product=product,
        trigger=trigger,
    )
    if check.refusal:
        raise ApiError(
            "price_guardrail",
            check.refusal,
            status_code=400,
            fields={"price_amount": [check.refusal]},
        )
    return [check.warning] if check.warning else []


class OfferViewSet(ReplicaReads, viewsets.ModelViewSet):
    """Bumps, upsells, downsells (`parent_id`: their upsell) and follow-up cross-sells
    (`followup_delays_hours`), with the pricing guardrails, the pause switch and the
    per-buyer upsell cap (`customer_cap_hours`). Every change is in the audit trail."""

    filterset_class = OfferFilter
    search_fields = ["headline"]
    ordering_fields = ["created_at", "price_amount", "id"]
    ordering = ["id"]

    def get_queryset(self):
        return Offer.objects.select_related("trigger_product").order_by("pk")

    def get_serializer_class(self):
        if self.action in ("create", "update", "partial_update"):
            return OfferIn
        if self.action in ("pause",):
            return PauseIn
        return OfferOut

    def _save(self, serializer, instance: Offer | None, ok_status: int) -> Response:
        serializer.is_valid(raise_exception=True)
        warnings = _guardrails(serializer.validated_data, instance)
        actor = actor_of(self.request)
        try:
            if instance is None:
                offer = services.offer_create(actor=actor, data=serializer.validated_data)
            else:
                offer = services.offer_update(
                    actor=actor, offer=instance, data=serializer.validated_data
                )
        except IntegrityError as exc:
            raise ApiError(
                "offer_conflict",
                "This product already has a live offer of that kind (or the upsell already "
                "has a downsell). Pause the other one first.",
                status_code=409,
            ) from exc
        body = OfferOut(offer).data | {"warnings": warnings}
        return Response(body, status=ok_status)

    @extend_schema(request=OfferIn, responses={201: OfferWithWarnings})
    def create(self, request, *args, **kwargs):
        return self._save(OfferIn(data=request.data), None, status.HTTP_201_CREATED)

    @extend_schema(request=OfferIn, responses=OfferWithWarnings)
    def update(self, request, *args, **kwargs):
        instance = self.get_object()
        partial = kwargs.pop("partial", False)
        return self._save(
            OfferIn(instance, data=request.data, partial=partial), instance, status.HTTP_200_OK
        )

    @extend_schema(request=OfferIn, responses=OfferWithWarnings)
    def partial_update(self, request, *args, **kwargs):
        kwargs["partial"] = True
        return self.update(request, *args, **kwargs)

    def destroy(self, request, *args, **kwargs):
        offer = self.get_object()
        try:
            services.offer_delete(actor=actor_of(request), offer=offer)
        except ProtectedError as exc:
            raise ApiError(
                "offer_in_use", "Orders refer to this offer; pause it instead.", status_code=409
            ) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=PauseIn, responses=OfferOut)
    @action(detail=True, methods=["post"], filter_backends=[])
    def pause(self, request, pk=None):
        offer = self.get_object()
        data = PauseIn(data=request.data)
        data.is_valid(raise_exception=True)
        offer_pause(actor=actor_of(request), offer=offer, reason=data.validated_data["reason"])
        offer.refresh_from_db()
        return Response(OfferOut(offer).data)

    @extend_schema(request=None, responses=OfferOut)
    @action(detail=True, methods=["post"], filter_backends=[])
    def resume(self, request, pk=None):
        offer = self.get_object()
        try:
            offer_resume(actor=actor_of(request), offer=offer)
        except IntegrityError as exc:
            raise ApiError(
                "offer_conflict",
                "Another offer of this kind is live for the product; pause it first.",
                status_code=409,
            ) from exc
        offer.refresh_from_db()
        return Response(OfferOut(offer).data)
