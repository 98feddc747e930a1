"""Partner API: coupons. Creating one needs a write key and an Idempotency-Key (a retried
POST must not make a second code); changes are audited like the admin's. The redemption
count is the database's and read only."""

from __future__ import annotations

import django_filters
from django import forms
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from api.auth import actor_of
from api.errors import ApiError
from api.fields import MINOR_UNITS, MINOR_UNITS_OUT
from api.reads import ReplicaReads
from api.schema import IDEMPOTENCY_HEADER
from audit.services import audited_create, audited_update
from offers.coupons import CODE_RE
from offers.models import Coupon, CouponKind
from partners.api.idempotency import idempotent

_Product = Coupon._meta.get_field("products").related_model


class CouponOut(serializers.ModelSerializer):
    product_ids = serializers.PrimaryKeyRelatedField(source="products", many=True, read_only=True)

    class Meta:
        model = Coupon
        fields = [
            "id",
            "code",
            "kind",
            "percent_off",
            "amount_off",
            "currency",
            "applies_to_all",
            "product_ids",
            "starts_at",
            "ends_at",
            "max_redemptions",
            "max_per_customer",
            "times_redeemed",
            "active",
            "created_at",
        ]
        extra_kwargs = {"amount_off": MINOR_UNITS_OUT}


class CouponIn(serializers.ModelSerializer):
    code = serializers.RegexField(
        CODE_RE.pattern.replace("$", r"\Z"),
        max_length=40,
        trim_whitespace=False,
        error_messages={"invalid": "A code has only letters, digits, - and _ (at most 40)."},
    )
    kind = serializers.ChoiceField(choices=CouponKind.choices)
    percent_off = serializers.DecimalField(
        max_digits=5, decimal_places=2, required=False, allow_null=True
    )
    amount_off = serializers.IntegerField(
        min_value=1, max_value=2**31 - 1, required=False, allow_null=True, help_text=MINOR_UNITS
    )
    currency = serializers.RegexField(r"^[A-Z]{3}\Z", required=False, trim_whitespace=False)
    product_ids = serializers.PrimaryKeyRelatedField(
        queryset=_Product.objects.all(), many=True, source="products", required=False
    )
    max_redemptions = serializers.IntegerField(
        min_value=1, max_value=2**31 - 1, required=False, allow_null=True
    )
    max_per_customer = serializers.IntegerField(
        min_value=1, max_value=2**31 - 1, required=False, allow_null=True
    )

    class Meta:
        model = Coupon
        fields = [
            "code",
            "kind",
            "percent_off",
            "amount_off",
            "currency",
            "applies_to_all",
            "product_ids",
            "starts_at",
            "ends_at",
            "max_redemptions",
            "max_per_customer",
            "active",
        ]
        validators = []  # the code's uniqueness (any case) is checked below and by the database

    def validate(self, attrs):
        products = attrs.pop("products", None)
        probe = Coupon(
            **{
                f: getattr(self.instance, f)
                for f in self.Meta.fields
                if f != "product_ids" and self.instance is not None
            }
        )
        for name, value in attrs.items():
            setattr(probe, name, value)
        try:
            probe.clean()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        taken = Coupon.objects.filter(code__iexact=probe.code)
        if self.instance is not None:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise serializers.ValidationError(
                {"code": ["A coupon with this code already exists (codes ignore case)."]}
            )
        if products is not None:
            attrs["products"] = products
        whole = attrs.get("applies_to_all", getattr(self.instance, "applies_to_all", True))
        if not whole and not (products or (self.instance and self.instance.products.exists())):
            raise serializers.ValidationError(
                {"product_ids": ["Name the products, or make it apply to the whole order."]}
            )
        return attrs


def _audited_save(*, actor, instance: Coupon | None, data: dict) -> Coupon:
    data = dict(data)
    products = data.pop("products", None)
    if instance is None:
        coupon = audited_create(
            model=Coupon,
            actor=actor,
            data=data,
            action="offers.coupon.add",
            summary="Added coupon {obj} through the API",
        )
    else:
        coupon = audited_update(
            obj=instance,
            actor=actor,
            data=data,
            action="offers.coupon.change",
            summary="Changed coupon {obj} through the API",
        )
    if products is not None:
        coupon.products.set(products)
    return coupon


class _TrueOrFalse(forms.NullBooleanField):
    """`true` / `false` (or 1 / 0) only: django-filter's default also reads "null" and
    "unknown" as no filter, answering a typo with every coupon instead of a 400."""

    widget = forms.TextInput  # the raw value, not NullBooleanSelect's reading of it

    def to_python(self, value):
        if value in (None, ""):
            return None
        key = value.strip().lower() if isinstance(value, str) else value
        found = {"true": True, "1": True, True: True, "false": False, "0": False, False: False}
        if key not in found:
            raise forms.ValidationError("Use true or false.", code="invalid")
        return found[key]


class _TrueOrFalseFilter(django_filters.BooleanFilter):
    field_class = _TrueOrFalse


class CouponFilter(django_filters.FilterSet):
    code = django_filters.CharFilter(lookup_expr="iexact")
    active = _TrueOrFalseFilter()

    class Meta:
        model = Coupon
        fields = ["code", "active", "kind"]


class CouponViewSet(
    ReplicaReads,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Coupons: a percentage or a fixed amount off the whole order or named products, between
    two dates, with a total and a per-buyer limit held by the database. `times_redeemed` is
    how many uses orders hold. Pause one with `active: false`."""

    filterset_class = CouponFilter
    search_fields = ["code"]
    ordering_fields = ["created_at", "id"]
    ordering = ["id"]

    def get_queryset(self):
        return Coupon.objects.prefetch_related("products").order_by("pk")

    def get_serializer_class(self):
        if self.action in ("create", "update", "partial_update"):
            return CouponIn
        return CouponOut

    def _conflict(self, exc: IntegrityError) -> ApiError:
        return ApiError(
            "coupon_conflict",
            "A coupon with this code already exists (codes ignore case).",
            status_code=409,
            fields={"code": ["Already taken."]},
        )

    @extend_schema(
        request=CouponIn,
        responses={201: CouponOut},
        parameters=[IDEMPOTENCY_HEADER],
        description="Add a coupon. Needs a write key and an Idempotency-Key header.",
    )
    def create(self, request, *args, **kwargs):
        def perform(_gateway_key: str) -> Response:
            data = CouponIn(data=request.data)
            data.is_valid(raise_exception=True)
            try:
                coupon = _audited_save(
                    actor=actor_of(request), instance=None, data=data.validated_data
                )
            except IntegrityError as exc:
                raise self._conflict(exc) from exc
            return Response(CouponOut(coupon).data, status=status.HTTP_201_CREATED)

        return idempotent(request, self, perform)

    @extend_schema(request=CouponIn, responses=CouponOut)
    def update(self, request, *args, **kwargs):
        instance = self.get_object()
        data = CouponIn(instance, data=request.data, partial=kwargs.pop("partial", False))
        data.is_valid(raise_exception=True)
        try:
            coupon = _audited_save(
                actor=actor_of(request), instance=instance, data=data.validated_data
            )
        except IntegrityError as exc:
            raise self._conflict(exc) from exc
        return Response(CouponOut(coupon).data)

    @extend_schema(request=CouponIn, responses=CouponOut)
    def partial_update(self, request, *args, **kwargs):
        kwargs["partial"] = True
        return self.update(request, *args, **kwargs)
