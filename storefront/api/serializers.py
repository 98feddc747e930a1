"""Output and input shapes of the storefront part of the partner API. Money: integer minor
units plus an ISO currency code."""
from rest_framework import serializers

from payments.models import Refund
from storefront.models import Customer, Order, OrderLine, Product


class ProductOut(serializers.ModelSerializer):
    class Meta:
        model = Product
        fields = ["id", "slug", "name", "description", "tier", "ladder_position",
                  "price_amount", "anchor_amount", "currency", "status", "created_at"]


class CustomerOut(serializers.ModelSerializer):
    class Meta:
        model = Customer
        fields = ["id", "email", "unsubscribed_at", "created_at"]


class OrderLineOut(serializers.ModelSerializer):
    product_id = serializers.IntegerField()
    offer_id = serializers.IntegerField(allow_null=True)

    class Meta:
        model = OrderLine
        fields = ["id", "kind", "product_id", "offer_id", "description", "net_amount",
                  "tax_amount", "total_amount", "currency", "tax_rate", "tax_inclusive",
                  "tax_country", "tax_region", "created_at"]


class OrderOut(serializers.ModelSerializer):
    customer = CustomerOut()
    lines = OrderLineOut(many=True)

    class Meta:
        model = Order
        fields = ["id", "token", "status", "customer", "currency", "country", "region",
                  "utm_source", "utm_medium", "utm_campaign", "variant", "created_at",
                  "paid_at", "lines"]


class RefundIn(serializers.Serializer):
    line_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    amount = serializers.IntegerField(
        min_value=1, max_value=2**31 - 1, required=False, allow_null=True,
        help_text="Minor units; omit to refund everything left on the line.",
    )
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class RefundOut(serializers.ModelSerializer):
    line_id = serializers.SerializerMethodField()
    order_id = serializers.SerializerMethodField()

    class Meta:
        model = Refund
        fields = ["id", "order_id", "line_id", "amount", "currency", "status", "reason",
                  "created_at", "finished_at"]

    def get_line_id(self, obj: Refund) -> int | None:
        _, _, pk = obj.line_key.partition(":")
        return int(pk) if pk.isdigit() else None

    def get_order_id(self, obj: Refund) -> int | None:
        _, _, pk = obj.reference.partition(":")
        return int(pk) if pk.isdigit() else None
