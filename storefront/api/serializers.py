"""Output and input shapes of the storefront part of the partner API. Money: integer minor
units plus an ISO currency code."""

from rest_framework import serializers

from api.fields import MINOR_UNITS, MINOR_UNITS_OUT
from core import orderkeys
from payments.models import Refund
from storefront.models import Customer, Order, OrderLine, PrivacyRequest, Product


class ProductOut(serializers.ModelSerializer):
    class Meta:
        model = Product
        fields = [
            "id",
            "slug",
            "name",
            "description",
            "tier",
            "ladder_position",
            "price_amount",
            "anchor_amount",
            "currency",
            "status",
            "created_at",
        ]
        extra_kwargs = {"price_amount": MINOR_UNITS_OUT, "anchor_amount": MINOR_UNITS_OUT}


class ProductIn(serializers.ModelSerializer):
    """Create (every required field) or update (PATCH: any of them) a product. Prices are
    minor units; the currency is fixed once the product exists (its offers are priced in it)."""

    # Patterns end in \Z and nothing is trimmed: "abc\n" is not a slug (Python's "$" and
    # DRF's trimming would both let it through, and the schema says otherwise).
    slug = serializers.RegexField(r"^[-a-zA-Z0-9_]+\Z", max_length=80, trim_whitespace=False)
    ladder_position = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False)
    price_amount = serializers.IntegerField(min_value=1, max_value=2**31 - 1, help_text=MINOR_UNITS)
    anchor_amount = serializers.IntegerField(
        min_value=1, max_value=2**31 - 1, required=False, allow_null=True, help_text=MINOR_UNITS
    )
    currency = serializers.RegexField(r"^[A-Z]{3}\Z", required=False, trim_whitespace=False)

    class Meta:
        model = Product
        fields = [
            "slug",
            "name",
            "description",
            "tier",
            "ladder_position",
            "price_amount",
            "anchor_amount",
            "currency",
            "status",
            "deliverable_url",
        ]
        # Slug uniqueness is the database's (a race is a 409 in the view, not a 500).
        validators = []

    def validate_slug(self, value: str) -> str:
        taken = Product.objects.filter(slug=value)
        if self.instance is not None:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise serializers.ValidationError("Another product has this slug.")
        return value

    def validate(self, attrs):
        instance = self.instance
        if instance is not None and "currency" in attrs and attrs["currency"] != instance.currency:
            raise serializers.ValidationError(
                {"currency": ["The currency cannot change once the product exists."]}
            )
        price = attrs.get("price_amount", getattr(instance, "price_amount", None))
        anchor = attrs.get("anchor_amount", getattr(instance, "anchor_amount", None))
        if anchor is not None and price is not None and anchor <= price:
            raise serializers.ValidationError(
                {"anchor_amount": ["The “was” price must be above the price."]}
            )
        return attrs


class LadderIn(serializers.Serializer):
    product_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        min_length=1,
        max_length=1000,
        help_text="Every product id of the store, lowest rung first.",
    )


class CustomerOut(serializers.ModelSerializer):
    class Meta:
        model = Customer
        fields = ["id", "email", "unsubscribed_at", "created_at"]


class OrderLineOut(serializers.ModelSerializer):
    product_id = serializers.IntegerField()
    offer_id = serializers.IntegerField(allow_null=True)

    class Meta:
        model = OrderLine
        fields = [
            "id",
            "kind",
            "product_id",
            "offer_id",
            "description",
            "discount_amount",
            "net_amount",
            "tax_amount",
            "total_amount",
            "currency",
            "tax_rate",
            "tax_inclusive",
            "tax_country",
            "tax_region",
            "created_at",
        ]


class OrderOut(serializers.ModelSerializer):
    customer = CustomerOut()
    lines = OrderLineOut(many=True)
    # The abandoned checkout a reminder brought this order back from, if any.
    recovered_from_id = serializers.IntegerField(allow_null=True, read_only=True)

    class Meta:
        model = Order
        fields = [
            "id",
            "token",
            "status",
            "customer",
            "currency",
            "country",
            "region",
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "variant",
            "coupon_code",
            "recovered_from_id",
            "created_at",
            "paid_at",
            "lines",
        ]


class RefundIn(serializers.Serializer):
    line_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    amount = serializers.IntegerField(
        min_value=1,
        max_value=2**31 - 1,
        required=False,
        allow_null=True,
        help_text="Minor units; omit to refund everything left on the line.",
    )
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class RefundOut(serializers.ModelSerializer):
    line_id = serializers.SerializerMethodField()
    order_id = serializers.SerializerMethodField()

    class Meta:
        model = Refund
        fields = [
            "id",
            "order_id",
            "line_id",
            "amount",
            "currency",
            "status",
            "reason",
            "created_at",
            "finished_at",
        ]

    def get_line_id(self, obj: Refund) -> int | None:
        # Line keys are "line:<pk>" for the checkout's lines and "<kind>:<order pk>" for
        # post-purchase lines (upsell, downsell, cross-sell): the key, not its number, is
        # what names the line, so look the line up by it.
        lines = self.context.get("lines_by_key")
        if lines is None:
            order_id = self.get_order_id(obj)
            lines = {line.line_key: line.pk for line in OrderLine.objects.filter(order_id=order_id)}
        return lines.get(obj.line_key)

    def get_order_id(self, obj: Refund) -> int | None:
        return orderkeys.order_reference_parse(obj.reference)


class PrivacyRequestIn(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    kind = serializers.ChoiceField(choices=["export", "erasure"])


class PrivacyRequestOut(serializers.ModelSerializer):
    export = serializers.SerializerMethodField(
        help_text="The export document once an export is done (until pruned); else null."
    )

    class Meta:
        model = PrivacyRequest
        fields = ["id", "kind", "channel", "state", "requested_at", "done_at", "export"]

    def get_export(self, obj) -> dict | None:
        return obj.result if obj.kind == "export" else None


class LicenseVerifyIn(serializers.Serializer):
    key = serializers.CharField(
        max_length=64, help_text="The license key, as the buyer has it (case and dashes free)."
    )


class LicenseOut(serializers.Serializer):
    """A license key this store issued and whether it may be used now: `valid` is true only
    while the line that paid for it is paid, not refunded and not charged back (`status`
    says which)."""

    key = serializers.CharField()
    valid = serializers.BooleanField()
    status = serializers.ChoiceField(choices=["active", "unpaid", "refunded", "disputed"])
    product = serializers.CharField(source="product_slug", help_text="The product's slug.")
    product_name = serializers.CharField()
    order = serializers.CharField(source="order_token", help_text="The order's public token.")
    line_id = serializers.IntegerField()
    issued_at = serializers.DateTimeField()
