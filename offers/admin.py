"""Offers with the pricing guardrails (refused above half the cart, warned outside 10–30%)
and a pause switch."""
from django import forms
from django.contrib import admin, messages

from offers.models import Offer
from offers.services import offer_pause, offer_price_check, offer_resume


class OfferForm(forms.ModelForm):
    class Meta:
        model = Offer
        fields = "__all__"

    def clean(self):
        data = super().clean()
        trigger, price = data.get("trigger_product"), data.get("price_amount")
        if trigger is not None and price and data.get("currency") == trigger.currency:
            from core.money import Money

            check = offer_price_check(offer_price=Money(price, trigger.currency),
                                      core_price=trigger.price,
                                      allow_high_price=data.get("allow_high_price", False))
            if check.refusal:
                self.add_error("price_amount", check.refusal)
            self.guardrail_warning = check.warning
        return data


@admin.register(Offer)
class OfferAdmin(admin.ModelAdmin):
    form = OfferForm
    list_display = ["headline", "kind", "trigger_product", "product", "price_amount", "currency",
                    "status"]
    list_filter = ["kind", "status"]
    search_fields = ["headline"]
    actions = ["pause", "resume"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if getattr(form, "guardrail_warning", ""):
            messages.warning(request, form.guardrail_warning)

    @admin.action(description="Pause selected offers")
    def pause(self, request, queryset):
        count = sum(offer_pause(offer=o, reason="paused in the admin") for o in queryset)
        self.message_user(request, f"Paused {count} offer(s).")

    @admin.action(description="Resume selected offers")
    def resume(self, request, queryset):
        count = sum(offer_resume(offer=o) for o in queryset)
        self.message_user(request, f"Resumed {count} offer(s).")
