"""Offers with the pricing guardrails (refused above half the cart unless overridden, warned
outside 10–30%), a pause switch with a visible reason, what buyers decided, and experiments
with their sample size shown before they start. Every change here is audited.

The Experiment model lives in analytics, but starting and stopping one are offers services
(offers.experiments), and analytics may not import offers: its admin is registered here."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from analytics import insights
from analytics.experiments import experiment_planned_sample
from analytics.models import Experiment, ExperimentStatus
from audit.admin import AuditedAdminMixin
from audit.services import actor_resolve
from core.admin_readonly import ReadOnlyAdmin
from core.money import Money
from core.money_forms import MoneyAdminMixin, MoneyField, major_text
from offers.experiments import experiment_start, experiment_stop
from offers.models import Coupon, CouponRedemption, Offer, OfferDecision
from offers.services import offer_pause, offer_price_check, offer_resume


class OfferForm(forms.ModelForm):
    """Offer.clean is the rule (refusal above 50% of the cart without `allow_high_price`);
    its `price_warnings` are shown when the offer is saved."""

    class Meta:
        model = Offer
        # Not status or paused_reason: pause and resume are actions, with a reason.
        fields = [
            "kind",
            "trigger_product",
            "product",
            "parent",
            "price_amount",
            "currency",
            "allow_high_price",
            "headline",
            "benefit",
            "refund_terms",
            "testimonial",
            "followup_delays_hours",
            "customer_cap_hours",
        ]

    def _get_validation_exclusions(self):
        # Status is not on the form, but the cap "one active bump/upsell per product" is
        # conditioned on it: keep it in validation so a breach is a form error, not a 500.
        exclude = super()._get_validation_exclusions()
        exclude.discard("status")
        return exclude


class PauseForm(forms.Form):
    reason = forms.CharField(
        max_length=300,
        help_text="Shown on the offer while it is paused, e.g. 'refunds too high, rewording'.",
    )


@admin.register(Offer)
class OfferAdmin(MoneyAdminMixin, AuditedAdminMixin, admin.ModelAdmin):
    form = OfferForm
    money_fields = {"price_amount": "currency"}
    list_display = [
        "headline",
        "kind",
        "trigger_product",
        "product",
        "price",  # Offer.price: Money, shown in its currency
        "status",
        "paused_reason",
        "price_check",
    ]
    list_filter = ["kind", "status"]
    search_fields = ["headline"]
    list_select_related = ["trigger_product", "product"]
    readonly_fields = ["status", "paused_reason", "price_check", "performance"]
    # offer_pause and offer_resume write their own audit rows ("offers.offer.pause").
    audit_self_recorded_actions = ("pause", "resume")
    actions = ["pause", "resume"]

    @admin.display(description="pricing guardrails")
    def price_check(self, offer: Offer) -> str:
        if offer is None or offer.pk is None or not offer.trigger_product_id:
            return (
                "Checked when you save: add-ons at 10–30% of the core price convert best; "
                "above 50% of the cart needs 'allow high price'."
            )
        trigger = offer.trigger_product
        if trigger.currency != offer.currency or not trigger.price_amount:
            return "–"
        check = offer_price_check(
            offer_price=offer.price,
            core_price=trigger.price,
            allow_high_price=offer.allow_high_price,
            product=offer.product if offer.product_id else None,
            trigger=trigger,
        )
        return (
            check.refusal
            or check.warning
            or (f"{check.percent_of_core}% of the core price: within the sweet spot.")
        )

    @admin.display(description="what it earns")
    def performance(self, offer: Offer) -> str:
        """The offer's line of the insights page's offer table, all time (analytics.insights)."""
        if offer is None or offer.pk is None:
            return "Shown here once buyers see the offer."
        summary = insights.offer_summary(offer.pk, offer.currency)
        try:
            dashboard = reverse("analytics-dashboard")
        except NoReverseMatch:  # not on a store's domain
            return summary
        return format_html(
            '{} <a href="{}?offer={}">See it on the insights page</a>', summary, dashboard, offer.pk
        )

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        for warning in getattr(obj, "price_warnings", []):
            messages.warning(request, warning)

    @admin.action(description="Pause selected offers (asks for a reason)…", permissions=["change"])
    def pause(self, request, queryset):
        form = PauseForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            reason = form.cleaned_data["reason"]
            actor = actor_resolve(request)
            count = sum(offer_pause(actor=actor, offer=o, reason=reason) for o in queryset)
            self.message_user(request, f"Paused {count} offer(s): {reason}")
            return None
        return self.action_page(
            request,
            queryset,
            action="pause",
            title="Pause offers",
            form=form,
            rows=[{"label": str(o), "detail": o.get_status_display()} for o in queryset],
            submit_label="Pause",
            intro="Buyers stop seeing these offers at once.",
        )

    @admin.action(description="Resume selected offers", permissions=["change"])
    def resume(self, request, queryset):
        actor = actor_resolve(request)
        count = sum(offer_resume(actor=actor, offer=o) for o in queryset)
        self.message_user(request, f"Resumed {count} offer(s).")


@admin.register(OfferDecision)
class OfferDecisionAdmin(ReadOnlyAdmin):
    """What each buyer was shown after checkout and what they did: read only (the row is the
    buyer's single-use token)."""

    list_display = [
        "order",
        "kind",
        "offer",
        "status",
        "total_amount",
        "currency",
        "presented_at",
        "decided_at",
        "followup_reason",
    ]
    list_filter = [
        "kind",
        "status",
        "presented_at",
        ("followup_flagged_at", admin.EmptyFieldListFilter),
    ]
    search_fields = ["order__token", "customer__email"]
    date_hierarchy = "presented_at"
    list_select_related = ["order", "offer"]
    exclude = ["nonce"]  # signed into the buyer's accept link


# --- experiments -----------------------------------------------------------------------------


def _plan(experiment: Experiment) -> tuple[int, int] | None:
    """(visitors per arm, in total) the test needs, or None when the inputs are unusable."""
    try:
        per_arm = experiment_planned_sample(experiment)
    except (ValueError, TypeError, ZeroDivisionError):
        return None
    return per_arm, per_arm * max(len(experiment.arms), 1)


def _plan_text(experiment: Experiment) -> str:
    plan = _plan(experiment)
    if plan is None:
        return "Fix the planning inputs to see the sample size."
    per_arm, total = plan
    return (
        f"{per_arm:,} visitors per arm ({total:,} in total over {len(experiment.arms)} arms) to "
        f"detect a change of {experiment.min_detectable_effect * 100:.1f} points from a "
        f"{experiment.baseline_rate * 100:.1f}% take rate (α={experiment.alpha}, "
        f"power={experiment.power}). Until then the result says 'underpowered'."
    )


def _variant_prices(variants, convert):
    """`variants` with each arm's "price_amount" passed through `convert` (a copy)."""
    if not isinstance(variants, dict):
        return variants
    return {
        arm: {**fields, "price_amount": convert(fields["price_amount"])}
        if isinstance(fields, dict) and "price_amount" in fields
        else fields
        for arm, fields in variants.items()
    }


def _offer_currency(offer_id) -> str:
    offer = Offer.objects.filter(pk=offer_id).only("currency").first() if offer_id else None
    return offer.currency if offer is not None else "USD"


class ExperimentForm(forms.ModelForm):
    """An arm's "price_amount" is typed like every price in the admin, in the offer's currency
    ("17.50"), and stored in minor units as the storefront applies it."""

    offer_id = forms.TypedChoiceField(label="Offer", coerce=int)

    class Meta:
        model = Experiment
        fields = [
            "name",
            "offer_id",
            "kind",
            "variants",
            "control_no_offer",
            "baseline_rate",
            "min_detectable_effect",
            "alpha",
            "power",
        ]
        help_texts = {
            "variants": 'Arm name → the fields that differ, e.g. {"a": {"headline": "Complete '
            'your kit"}, "b": {"headline": "Add the workbook"}}; a price test: {"a": '
            '{"price_amount": "19.00"}, "b": {"price_amount": "24.00"}}, in the offer\'s '
            "currency.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "offer_id" in self.fields:
            self.fields["offer_id"].choices = [(o.pk, str(o)) for o in Offer.objects.order_by("pk")]
        if "variants" in self.fields and not self.is_bound:
            currency = _offer_currency(self.initial.get("offer_id"))
            self.initial["variants"] = _variant_prices(
                self.initial.get("variants"),
                lambda v: major_text(v, currency) if isinstance(v, int) else v,
            )

    def clean_variants(self):
        variants = self.cleaned_data.get("variants")
        field = MoneyField(currency=_offer_currency(self.cleaned_data.get("offer_id")), min_minor=1)
        problems: list[str] = []

        def to_minor(value):
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                problems.append('Give each price as text, e.g. "19.00".')
                return value
            try:
                return field.clean(str(value))
            except forms.ValidationError as exc:
                problems.extend(exc.messages)
                return value

        variants = _variant_prices(variants, to_minor)
        if problems:
            raise forms.ValidationError([f"price_amount: {p}" for p in problems])
        return variants

    def clean(self):
        data = super().clean()
        needed = ("baseline_rate", "min_detectable_effect", "alpha", "power")
        if all(data.get(n) is not None for n in needed):
            probe = Experiment(**{n: data[n] for n in needed})
            if _plan(probe) is None:
                raise forms.ValidationError(
                    "The baseline rate plus the effect must stay strictly between 0 and 1, "
                    "and α and power between 0 and 1: no sample size answers otherwise."
                )
        return data


@admin.register(Experiment)
class ExperimentAdmin(AuditedAdminMixin, admin.ModelAdmin):
    form = ExperimentForm
    list_display = [
        "name",
        "offer_id",
        "kind",
        "status",
        "arm_list",
        "planned_per_arm",
        "started_at",
        "stopped_at",
    ]
    list_filter = ["status", "kind"]
    search_fields = ["name"]
    actions = ["start", "stop"]
    # experiment_start and experiment_stop write their own audit rows.
    audit_self_recorded_actions = ("start", "stop")

    def get_readonly_fields(self, request, obj=None):
        fixed = ["status", "started_at", "stopped_at", "sample_size", "results"]
        if obj is not None and obj.status != ExperimentStatus.DRAFT:
            # What a running or finished test compares may not change under it.
            fixed += [
                "offer_id",
                "kind",
                "variants_shown",
                "control_no_offer",
                "baseline_rate",
                "min_detectable_effect",
                "alpha",
                "power",
            ]
        return fixed

    def get_exclude(self, request, obj=None):
        exclude = list(super().get_exclude(request, obj) or [])
        if obj is not None and obj.status != ExperimentStatus.DRAFT:
            exclude.append("variants")  # shown read only, prices in the currency
        return exclude

    @admin.display(description="variants")
    def variants_shown(self, experiment: Experiment) -> str:
        currency = _offer_currency(experiment.offer_id)
        shown = _variant_prices(
            experiment.variants,
            lambda v: str(Money(v, currency)) if isinstance(v, int) else v,
        )
        return json.dumps(shown, ensure_ascii=False)

    @admin.display(description="arms")
    def arm_list(self, experiment: Experiment) -> str:
        return ", ".join(experiment.arms)

    @admin.display(description="needed per arm")
    def planned_per_arm(self, experiment: Experiment):
        plan = _plan(experiment)
        return f"{plan[0]:,}" if plan else "–"

    @admin.display(description="sample size")
    def sample_size(self, experiment: Experiment | None) -> str:
        if experiment is None or experiment.pk is None:
            return "Shown once the draft is saved (and again before you start it)."
        return _plan_text(experiment)

    @admin.display(description="results")
    def results(self, experiment: Experiment | None):
        if experiment is None or experiment.pk is None:
            return "–"
        return format_html(
            '<a href="{}">On the analytics dashboard</a>', reverse("analytics-dashboard")
        )

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if obj.status == ExperimentStatus.DRAFT:
            messages.info(request, f"“{obj}” needs {_plan_text(obj)}")

    @admin.action(
        description="Start selected experiments (shows the sample size first)…",
        permissions=["change"],
    )
    def start(self, request, queryset):
        drafts = list(queryset.filter(status=ExperimentStatus.DRAFT))
        if not drafts:
            self.message_user(request, "Only draft experiments can be started.", messages.WARNING)
            return None
        if "apply" not in request.POST:
            return self.action_page(
                request,
                queryset.filter(pk__in=[e.pk for e in drafts]),
                action="start",
                title="Start experiments",
                form=forms.Form(),
                rows=[{"label": str(e), "detail": _plan_text(e)} for e in drafts],
                submit_label="Start",
                intro="Read the result only once each arm has reached its sample size: the "
                "dashboard's verdict stays valid when you look early, but it will say "
                "'underpowered' until then.",
            )
        started, actor = 0, actor_resolve(request)
        for experiment in drafts:
            try:
                plan = _plan(experiment)
                with transaction.atomic():
                    started += experiment_start(
                        actor=actor,
                        experiment=experiment,
                        planned_per_arm=plan[0] if plan else None,
                    )
            except IntegrityError:
                messages.error(
                    request,
                    f"“{experiment}”: another experiment is already "
                    "running on this offer; stop it first.",
                )
            except ValidationError as exc:
                messages.error(request, f"“{experiment}”: {'; '.join(exc.messages)}")
        self.message_user(request, f"Started {started} experiment(s).")
        return None

    @admin.action(description="Stop selected experiments", permissions=["change"])
    def stop(self, request, queryset):
        actor = actor_resolve(request)
        count = sum(experiment_stop(actor=actor, experiment=e) for e in queryset)
        self.message_user(request, f"Stopped {count} experiment(s).")


@admin.register(Coupon)
class CouponAdmin(MoneyAdminMixin, AuditedAdminMixin, admin.ModelAdmin):
    """Coupons with their limits. The counts are the database's (offers.coupons): read only
    here, so a staff edit cannot hand out uses the limit refused."""

    list_display = [
        "code",
        "describe",
        "applies_to_all",
        "starts_at",
        "ends_at",
        "times_redeemed",
        "max_redemptions",
        "max_per_customer",
        "active",
    ]
    list_filter = ["active", "kind", "applies_to_all"]
    search_fields = ["code"]
    filter_horizontal = ["products"]
    money_fields = {"amount_off": "currency"}
    readonly_fields = ["times_redeemed", "created_at"]
    fields = [
        "code",
        "kind",
        "percent_off",
        "amount_off",
        "currency",
        "applies_to_all",
        "products",
        "starts_at",
        "ends_at",
        "max_redemptions",
        "max_per_customer",
        "active",
        "times_redeemed",
        "created_at",
    ]

    @admin.display(description="discount")
    def describe(self, coupon: Coupon) -> str:
        return coupon.describe

    def has_delete_permission(self, request, obj=None):
        # A used coupon stays (its redemptions refer to it); untick "active" instead.
        if obj is not None and obj.redemptions.exists():
            return False
        return super().has_delete_permission(request, obj)


@admin.register(CouponRedemption)
class CouponRedemptionAdmin(ReadOnlyAdmin):
    """Which order used which coupon, for how much; released uses were given back (the order
    failed, or the buyer started a new checkout)."""

    list_display = ["code", "order", "customer", "amount", "currency", "created_at", "released_at"]
    list_filter = ["code", "created_at"]
    search_fields = ["code", "customer__email", "order__token"]
    list_select_related = ["order", "customer"]
