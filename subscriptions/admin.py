"""The creator's admin: plans (a product's price type), subscriptions with their state and
history (cancel, pause, restart, refund the last payment), and the dunning settings."""

from __future__ import annotations

from django.contrib import admin, messages

from audit.admin import AuditedAdminMixin
from core.money_forms import MoneyAdminMixin
from subscriptions import services
from subscriptions.models import (
    DunningSettings,
    Plan,
    Subscription,
    SubscriptionEvent,
    SubscriptionPeriod,
)


@admin.register(Plan)
class PlanAdmin(MoneyAdminMixin, AuditedAdminMixin, admin.ModelAdmin):
    """The price per period is the product's price (or the offer's): changing it applies to
    new subscribers only, because each subscription keeps the amount it was sold at."""

    list_display = ("product", "kind", "interval_count", "interval_unit", "trial_days")
    list_filter = ("kind", "interval_unit")
    money_fields = {"setup_fee_amount": "product.currency"}
    fields = (
        "product",
        "kind",
        "interval_unit",
        "interval_count",
        "trial_days",
        "setup_fee_amount",
        "instalments",
    )

    def has_delete_permission(self, request, obj=None):
        # A plan with subscribers stays: whether their downloads may be served is read from
        # their subscription only for products that have a plan (storefront.services.subscribe).
        if obj is not None and obj.product.subscriptions.exists():
            return False
        return super().has_delete_permission(request, obj)


class PeriodInline(admin.TabularInline):
    model = SubscriptionPeriod
    extra = 0
    can_delete = False
    fields = ("number", "starts_at", "ends_at", "amount", "status", "tries", "next_retry_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class HistoryInline(admin.TabularInline):
    model = SubscriptionEvent
    extra = 0
    can_delete = False
    fields = ("at", "what", "detail")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Subscription)
class SubscriptionAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = (
        "pk",
        "customer",
        "product",
        "status",
        "amount",
        "currency",
        "next_charge_at",
        "paid_through",
        "cancel_at_period_end",
    )
    list_filter = ("status", "kind", "cancel_at_period_end")
    search_fields = ("customer__email",)
    inlines = [PeriodInline, HistoryInline]
    actions = ["cancel_now", "pause", "unpause", "refund_last"]
    audit_self_recorded_actions = ("refund_last",)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def _each(self, request, queryset, change, done: str) -> None:
        """`change(subscription_id=…, by=…)` on each selected subscription, refusals reported."""
        changed = 0
        for sub in queryset:
            try:
                changed += bool(change(subscription_id=sub.pk, by=request.user.get_username()))
            except services.SubscriptionRefused as exc:
                messages.warning(request, f"{sub}: {exc.message}")
        messages.info(request, f"{changed} subscription(s) {done}.")

    @admin.action(description="Cancel now (access stops, nothing more is charged)")
    def cancel_now(self, request, queryset):
        self._each(request, queryset, services.subscription_cancel_now, "cancelled")

    @admin.action(description="Pause (no charges, no access)")
    def pause(self, request, queryset):
        self._each(request, queryset, services.subscription_pause, "paused")

    @admin.action(description="Restart paused subscriptions")
    def unpause(self, request, queryset):
        self._each(request, queryset, services.subscription_unpause, "restarted")

    @admin.action(description="Refund the last payment (ends the subscription)")
    def refund_last(self, request, queryset):
        def refund(*, subscription_id: int, by: str):
            return services.subscription_refund_last(
                subscription_id=subscription_id, actor=request, requested_by=by
            )

        self._each(request, queryset, refund, "refunded")


@admin.register(DunningSettings)
class DunningSettingsAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("__str__", "retry_days", "final_action", "expiry_reminder_days")

    def has_add_permission(self, request) -> bool:
        return not DunningSettings.objects.exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
