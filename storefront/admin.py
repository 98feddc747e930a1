"""The creator's store: the product ladder, customers, orders with lines, refunds."""
from django.contrib import admin, messages

from payments.services import RefundRefused, refund_create
from storefront.models import Customer, Order, OrderLine, Product, StoreSettings, TaxRate


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "tier", "ladder_position", "price_amount", "currency", "status"]
    list_editable = ["ladder_position"]
    list_filter = ["tier", "status"]
    search_fields = ["name", "slug"]
    ordering = ["ladder_position", "pk"]
    prepopulated_fields = {"slug": ["name"]}


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    can_delete = False
    fields = ["kind", "product", "offer", "description", "net_amount", "tax_amount",
              "total_amount", "currency", "tax_rate"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["token", "customer", "status", "currency", "utm_source", "created_at",
                    "paid_at"]
    list_filter = ["status", "utm_source", "created_at"]
    search_fields = ["token", "customer__email"]
    date_hierarchy = "created_at"
    inlines = [OrderLineInline]
    actions = ["refund_in_full"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Order._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Refund selected orders in full (every line)")
    def refund_in_full(self, request, queryset):
        done = 0
        for order in queryset:
            for line in order.lines.all():
                try:
                    refund_create(reference=order.reference, line_key=line.line_key,
                                  amount=None, reason="refunded in the admin",
                                  requested_by=request.user.get_username())
                    done += 1
                except RefundRefused as exc:
                    messages.warning(request, f"{order}: {exc}")
        self.message_user(request, f"Refunded {done} line(s).")


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["email", "created_at", "unsubscribed_at"]
    search_fields = ["email"]
    list_filter = ["created_at"]


admin.site.register(TaxRate)
admin.site.register(StoreSettings)
