"""Offer shapes for the partner API. Products are referenced by id (offers never import
storefront: the product model is reached through the foreign key)."""

from rest_framework import serializers

from api.fields import MINOR_UNITS, MINOR_UNITS_OUT
from offers.models import Offer, OfferKind

_Product = Offer._meta.get_field("product").related_model


class OfferOut(serializers.ModelSerializer):
    trigger_product_id = serializers.IntegerField()
    product_id = serializers.IntegerField()
    parent_id = serializers.IntegerField(allow_null=True)

    class Meta:
        model = Offer
        fields = [
            "id",
            "kind",
            "trigger_product_id",
            "product_id",
            "parent_id",
            "price_amount",
            "currency",
            "headline",
            "benefit",
            "refund_terms",
            "testimonial",
            "status",
            "paused_reason",
            "allow_high_price",
            "followup_delays_hours",
            "customer_cap_hours",
            "created_at",
        ]
        extra_kwargs = {"price_amount": MINOR_UNITS_OUT}


class OfferWithWarnings(OfferOut):
    warnings = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta(OfferOut.Meta):
        fields = OfferOut.Meta.fields + ["warnings"]


class OfferIn(serializers.ModelSerializer):
    kind = serializers.ChoiceField(choices=OfferKind.choices)
    trigger_product_id = serializers.PrimaryKeyRelatedField(
        queryset=_Product.objects.all(), source="trigger_product"
    )
    product_id = serializers.PrimaryKeyRelatedField(
        queryset=_Product.objects.all(), source="product"
    )
    parent_id = serializers.PrimaryKeyRelatedField(
        queryset=Offer.objects.filter(kind=OfferKind.UPSELL),
        source="parent",
        required=False,
        allow_null=True,
    )
    price_amount = serializers.IntegerField(min_value=1, max_value=2**31 - 1, help_text=MINOR_UNITS)
    # \Z and no trimming: "USD\n" is not a currency (the schema's pattern agrees).
    currency = serializers.RegexField(r"^[A-Z]{3}\Z", required=False, trim_whitespace=False)
    followup_delays_hours = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=24 * 90), max_length=2, required=False
    )
    customer_cap_hours = serializers.IntegerField(
        min_value=0,
        max_value=24 * 365,
        required=False,
        help_text="Show a buyer at most one upsell per this many hours (0: no limit).",
    )

    class Meta:
        model = Offer
        fields = [
            "kind",
            "trigger_product_id",
            "product_id",
            "parent_id",
            "price_amount",
            "currency",
            "headline",
            "benefit",
            "refund_terms",
            "testimonial",
            "allow_high_price",
            "followup_delays_hours",
            "customer_cap_hours",
        ]
        # The caps are conditional unique constraints held by the database; the view turns a
        # violation into a 409 (DRF's generated validators would demand `parent` on every offer).
        validators = []

    def validate(self, attrs):
        kind = attrs.get("kind", getattr(self.instance, "kind", None))
        parent = attrs.get("parent", getattr(self.instance, "parent", None))
        if kind == OfferKind.DOWNSELL and parent is None:
            raise serializers.ValidationError({"parent_id": ["A downsell needs its upsell."]})
        if kind != OfferKind.DOWNSELL and parent is not None:
            raise serializers.ValidationError({"parent_id": ["Only a downsell has a parent."]})
        trigger = attrs.get("trigger_product", getattr(self.instance, "trigger_product", None))
        if kind == OfferKind.DOWNSELL and parent is not None:
            # The same rules as the admin form (Offer.clean): it follows its upsell, cheaper.
            if trigger is not None and parent.trigger_product_id != trigger.pk:
                raise serializers.ValidationError(
                    {"parent_id": ["The downsell must follow an upsell for the same core product."]}
                )
            price = attrs.get("price_amount", getattr(self.instance, "price_amount", None))
            if price is not None and price >= parent.price_amount:
                raise serializers.ValidationError(
                    {"price_amount": ["A downsell should cost less than the upsell it replaces."]}
                )
        currency = attrs.get("currency", getattr(self.instance, "currency", None))
        if trigger is not None and currency and currency != trigger.currency:
            raise serializers.ValidationError(
                {"currency": [f"Must match the product's currency {trigger.currency}."]}
            )
        return attrs


class PauseIn(serializers.Serializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
