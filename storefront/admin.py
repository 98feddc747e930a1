"""The creator's store: the product ladder, customers, orders with lines and their refunds,
tax rates, store settings and the follow-up emails. What changes prices or moves money is
audited (AuditedAdminMixin; each refund as its own "payments.refund.issue" row)."""

from __future__ import annotations

import secrets

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.utils.html import format_html, format_html_join

from audit.admin import AuditedAdminMixin
from core.admin_readonly import ReadOnlyAdmin
from core.money import Money
from core.money_forms import MoneyAdminMixin, MoneyField
from payments.demo import DEMO_MARK
from payments.models import ChargeAttempt, Refund, RefundStatus
from payments.services import ledger_line_totals
from storefront.admin_home import store_currency
from storefront.media import ImageRefused, image_check, image_store
from storefront.models import (
    OWNED_ORDER_STATUSES,
    Customer,
    FollowUpSend,
    Order,
    OrderLine,
    Product,
    ProductImage,
    StoreSettings,
    TaxRate,
    Testimonial,
)
from storefront.services.refunds import (
    RefundOutcome,
    RefundRefused,
    order_line_refund,
    order_refund_all,
)
from storefront.services.showcase import product_showcase_refresh


class ProductImageForm(forms.ModelForm):
    """A picture is uploaded once and stored resized (storefront.media); the alt text is
    required. A refused file (too large, too many pixels, animated, damaged, SVG, not an
    image) is an error at the field and nothing is stored."""

    upload = forms.FileField(
        required=False,
        label="Picture",
        help_text="PNG, JPEG, WebP or AVIF; at most 8 MB and 40 megapixels; no animation, no SVG.",
    )

    class Meta:
        model = ProductImage
        fields = ["upload", "alt", "position"]

    def clean(self):
        data = super().clean()
        upload = data.get("upload")
        if upload:
            try:
                self.checked = image_check(upload)
            except ImageRefused as exc:
                self.add_error("upload", str(exc))
        elif not self.instance.variants:
            self.add_error("upload", "Choose a picture to upload.")
        return data

    def save(self, commit=True):
        checked = getattr(self, "checked", None)
        if checked is not None:
            self.instance.variants = image_store(checked)
        return super().save(commit=commit)


class ProductImageInline(admin.StackedInline):  # stacked: every input has its label (axe)
    model = ProductImage
    form = ProductImageForm
    extra = 1
    fields = ["shown", "upload", "alt", "position"]
    readonly_fields = ["shown"]

    @admin.display(description="Now")
    def shown(self, image: ProductImage):
        picture = image.picture(display_width=96) if image.pk else None
        if picture is None:
            return "—"
        return format_html(
            '<img src="{}" alt="{}" width="96" height="{}">',
            picture.src,
            picture.alt,
            round(96 * picture.height / picture.width),
        )


class TestimonialInline(admin.StackedInline):
    model = Testimonial
    extra = 0
    fields = ["quote", "author", "position"]


class PrivateFileInput(forms.ClearableFileInput):
    """The current deliverable by name, without a link: it has no public URL (its storage's
    url() refuses), and the stock widget would link it."""

    template_name = "storefront/widgets/private_file_input.html"

    def is_initial(self, value):
        return bool(value and getattr(value, "name", None))


class LabelledListEditableMixin:
    """list_editable inputs get an accessible name ("Ladder position of Photo basics"): the
    stock changelist gives them none (axe: label)."""

    def get_changelist_form(self, request, **kwargs):
        base = super().get_changelist_form(request, **kwargs)

        class Labelled(base):
            def __init__(self, *args, **kw):
                super().__init__(*args, **kw)
                for field in self.fields.values():
                    label = f"{str(field.label).capitalize()} of {self.instance}"
                    field.widget.attrs.setdefault("aria-label", label)

        return Labelled


class SourceFilter(admin.SimpleListFilter):
    """The order's attribution source, with visits without one named "(direct)" (the stock
    filter shows them as an empty link)."""

    title = "source"
    parameter_name = "utm_source"

    def lookups(self, request, model_admin):
        sources = Order.objects.order_by("utm_source").values_list("utm_source", flat=True)
        return [(s or "(direct)", s or "(direct)") for s in sources.distinct()[:50]]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(utm_source="" if value == "(direct)" else value)


@admin.register(Product)
class ProductAdmin(MoneyAdminMixin, LabelledListEditableMixin, AuditedAdminMixin, admin.ModelAdmin):
    formfield_overrides = {models.FileField: {"widget": PrivateFileInput}}
    money_fields = {"price_amount": "currency", "anchor_amount": "currency"}
    money_default_currency = staticmethod(store_currency)
    # Product.price is Money: shown in its currency, never minor units.
    list_display = ["name", "tier", "ladder_position", "price", "status"]
    list_editable = ["ladder_position"]
    list_filter = ["tier", "status"]
    search_fields = ["name", "slug"]
    ordering = ["ladder_position", "pk"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [ProductImageInline, TestimonialInline]

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        product_showcase_refresh(product_id=form.instance.pk)


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    can_delete = False
    fields = [
        "kind",
        "product",
        "offer",
        "description",
        "net",
        "tax",
        "total",
        "tax_rate",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    # Amounts in the order's currency ("€9.00"), never minor units.
    @admin.display(description="net")
    def net(self, line: OrderLine) -> str:
        return Money(line.net_amount, line.currency).format()

    @admin.display(description="tax")
    def tax(self, line: OrderLine) -> str:
        return Money(line.tax_amount, line.currency).format()

    @admin.display(description="total")
    def total(self, line: OrderLine) -> str:
        return Money(line.total_amount, line.currency).format()


# --- refunds ---------------------------------------------------------------------------------

_KEY_CHARS = frozenset("0123456789abcdef")


def _new_refund_key() -> str:
    return secrets.token_hex(16)


class _RefundKeyForm(forms.Form):
    # Minted when the page is shown and sent back with it: submitting the same page twice
    # (a double click, a resent POST) reuses the idempotency keys and refunds only once.
    refund_key = forms.CharField(widget=forms.HiddenInput, min_length=32, max_length=32)
    reason = forms.CharField(
        max_length=200, help_text="Why (kept with the refund and the audit trail)."
    )

    def clean_refund_key(self) -> str:
        key = self.cleaned_data["refund_key"]
        if not set(key) <= _KEY_CHARS:
            raise forms.ValidationError("This form is damaged: reload the order list.")
        return key


class RefundLinesForm(_RefundKeyForm):
    """One amount per line, in the order's currency (major units, e.g. 12.50); empty or 0
    leaves the line alone."""

    def __init__(self, *args, orders: list[Order], **kwargs):
        super().__init__(*args, **kwargs)
        self.rows = []
        for order in orders:
            left = _left_to_refund(order)
            for line in order.lines.all():
                name = f"amount_{line.pk}"
                self.fields[name] = MoneyField(
                    required=False, currency=line.currency, label=f"{order} · {line}"
                )
                self.fields[name].widget.attrs["aria-label"] = f"Refund now on {order} · {line}"
                self.rows.append(
                    {
                        "order": order,
                        "line": line,
                        "field": name,
                        "charged": Money(line.total_amount, line.currency),
                        "left": Money(left.get(line.line_key, 0), line.currency),
                    }
                )

    def bound_rows(self):
        return [{**row, "input": self[row["field"]]} for row in self.rows]

    def refunds(self) -> list[tuple[Order, OrderLine, Money]]:
        wanted = []
        for row in self.rows:
            minor = self.cleaned_data.get(row["field"])
            if minor:
                line = row["line"]
                wanted.append((row["order"], line, Money(minor, line.currency)))
        return wanted

    def clean(self):
        data = super().clean()
        if not self.errors and not self.refunds():
            raise forms.ValidationError("Enter an amount for at least one line.")
        return data


def _left_to_refund(order: Order) -> dict[str, int]:
    """Per line key: charged minus refunded and disputed, as the ledger has it (display only:
    refund_create re-checks under a lock, counting refunds still in flight)."""
    return {
        key: max(t["charge"] - t["refund"] - t["chargeback"], 0)
        for key, t in ledger_line_totals(reference=order.reference).items()
    }


@admin.register(Order)
class OrderAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = [
        "token",
        "customer",
        "status",
        "currency",
        "utm_source",
        "created_at",
        "paid_at",
    ]
    list_filter = ["status", SourceFilter, "created_at"]
    search_fields = ["token", "customer__email"]
    date_hierarchy = "created_at"
    inlines = [OrderLineInline]
    actions = ["refund_lines", "refund_in_full"]
    # Each refund is recorded as its own "payments.refund.issue" row (amount, tax, line).
    audit_self_recorded_actions = ("refund_lines", "refund_in_full")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Order._meta.fields] + ["payment", "refunds"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="payment")
    def payment(self, order: Order) -> str:
        attempts = ChargeAttempt.objects.filter(reference=order.reference)
        if attempts.filter(demo=True).exists():
            return (
                "Demo data: seeded history, paid in the demo's in-process gateway, not at the "
                "payment gateway. Refunds work as for any order and count in the figures; "
                "they are recorded without a gateway call."
            )
        refs = attempts.exclude(gateway_ref="").values_list("gateway_ref", flat=True)
        return ", ".join(refs) or "not charged"

    @admin.display(description="refunds")
    def refunds(self, order: Order):
        rows = Refund.objects.filter(reference=order.reference).order_by("pk")
        if not rows:
            return "none"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li>{} on {} [{}] {} — {}</li>",
                (
                    (Money(r.amount, r.currency), r.line_key, r.status, r.requested_by, r.reason)
                    for r in rows
                ),
            ),
        )

    def _paid(self, request, queryset) -> list[Order]:
        orders = list(queryset.prefetch_related("lines").order_by("pk"))
        refundable = OWNED_ORDER_STATUSES
        for order in orders:
            if order.status not in refundable:
                messages.warning(
                    request,
                    f"{order} is {order.get_status_display().lower()}: "
                    "only paid orders can be refunded.",
                )
        return [o for o in orders if o.status in refundable]

    @admin.action(
        description="Refund part of selected orders (an amount per line)…", permissions=["change"]
    )
    def refund_lines(self, request, queryset):
        orders = self._paid(request, queryset)
        if not orders:
            return None
        if "apply" in request.POST:
            form = RefundLinesForm(request.POST, orders=orders)
            if form.is_valid():
                key, reason = form.cleaned_data["refund_key"], form.cleaned_data["reason"]
                for order, line, amount in form.refunds():
                    self._refund_line(
                        request,
                        order,
                        line,
                        amount,
                        reason=reason,
                        key=f"adm_{key}_{line.line_key}",
                    )
                return None
        else:
            form = RefundLinesForm(initial={"refund_key": _new_refund_key()}, orders=orders)
        return self.action_page(
            request,
            queryset.filter(pk__in=[o.pk for o in orders]),
            action="refund_lines",
            title="Refund part of an order",
            form=form,
            rows=form.bound_rows(),
            submit_label="Refund these amounts",
            template="admin/storefront/order/refund_lines.html",
            intro="Amounts include tax; the tax part is reversed in proportion to each line.",
        )

    @admin.action(
        description="Refund selected orders in full (every line)…", permissions=["change"]
    )
    def refund_in_full(self, request, queryset):
        orders = self._paid(request, queryset)
        if not orders:
            return None
        form = _RefundKeyForm(
            request.POST if "apply" in request.POST else None,
            initial={"refund_key": _new_refund_key()},
        )
        if form.is_bound and form.is_valid():
            for order in orders:
                self._refund_order(
                    request,
                    order,
                    reason=form.cleaned_data["reason"],
                    key=f"adm_{form.cleaned_data['refund_key']}_o{order.pk}",
                )
            return None
        rows = []
        for order in orders:
            left = sum(_left_to_refund(order).values())
            rows.append(
                {"label": str(order), "detail": f"{Money(left, order.currency)} left to refund"}
            )
        return self.action_page(
            request,
            queryset.filter(pk__in=[o.pk for o in orders]),
            action="refund_in_full",
            title="Refund orders in full",
            form=form,
            rows=rows,
            submit_label="Yes, refund everything left on these orders",
            intro="Every line is refunded for what is left on it, tax included.",
        )

    def _refund_line(
        self, request, order: Order, line: OrderLine, amount: Money, *, reason: str, key: str
    ) -> None:
        try:
            outcome = order_line_refund(
                order=order,
                line=line,
                amount=amount,
                reason=reason,
                actor=request,
                requested_by=request.user.get_username(),
                idempotency_key=key,
            )
        except RefundRefused as exc:
            messages.error(request, f"{order} · {line.description}: not refunded, {exc}.")
            return
        self._refunded(request, order, outcome)

    def _refund_order(self, request, order: Order, *, reason: str, key: str) -> None:
        try:
            outcome = order_refund_all(
                order=order,
                reason=reason,
                actor=request,
                requested_by=request.user.get_username(),
                idempotency_key=key,
            )
        except RefundRefused as exc:
            messages.error(request, f"{order}: not refunded, {exc}.")
            return
        self._refunded(request, order, outcome)

    def _refunded(self, request, order: Order, outcome: RefundOutcome) -> None:
        if outcome.repeat:
            messages.info(
                request, f"{order}: this form was already sent; nothing was refunded twice."
            )
            return
        for refund in outcome.refunds:
            amount = Money(refund.amount, refund.currency)
            if refund.status == RefundStatus.SUCCEEDED:
                demo = " (demo data: no gateway call)" if DEMO_MARK in refund.gateway_ref else ""
                messages.success(request, f"{order}: refunded {amount} on {refund.line_key}{demo}.")
            elif refund.status == RefundStatus.FAILED:
                messages.error(
                    request,
                    f"{order}: the gateway refused the refund of {amount} "
                    f"on {refund.line_key} ({refund.reason}).",
                )
            else:
                messages.warning(
                    request,
                    f"{order}: the refund of {amount} on "
                    f"{refund.line_key} is sent, its outcome is not "
                    "known yet (reconciliation will settle it).",
                )


@admin.register(Customer)
class CustomerAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["email", "created_at", "unsubscribed_at", "erased_at"]
    readonly_fields = ["erased_at"]
    search_fields = ["email"]
    list_filter = ["created_at"]


@admin.register(TaxRate)
class TaxRateAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["country", "region", "rate", "name"]
    list_filter = ["country"]
    search_fields = ["country", "region", "name"]


@admin.register(StoreSettings)
class StoreSettingsAdmin(MoneyAdminMixin, AuditedAdminMixin, admin.ModelAdmin):
    # The limit applies to every order; it is typed in the currency most products use.
    money_fields = {"support_refund_limit": ""}
    money_default_currency = staticmethod(store_currency)
    list_display = [
        "__str__",
        "prices_include_tax",
        "statement_descriptor",
        "sender_name",
        "support_email",
        "recovery_enabled",
    ]

    def has_add_permission(self, request):
        return super().has_add_permission(request) and not StoreSettings.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False  # one row per store, always


@admin.register(FollowUpSend)
class FollowUpSendAdmin(ReadOnlyAdmin):
    """What follow-up emails were scheduled, sent or skipped, and why. Read only: workers own
    these rows (a claim is a conditional UPDATE)."""

    list_display = [
        "customer",
        "sequence",
        "offer",
        "product",
        "step",
        "due_at",
        "status",
        "sent_at",
        "skipped_reason",
        "accepted_at",
    ]
    list_filter = ["sequence", "status", "step", "skipped_reason", "due_at", "offer"]
    search_fields = ["customer__email", "order__token"]
    date_hierarchy = "due_at"
    list_select_related = ["customer", "offer", "product"]
    exclude = ["nonce"]  # signed into the email's accept link


# Buyers' privacy requests and the store's documents: their own module (this one stays under
# 600 lines), registered when the admin loads this one.
from storefront import admin_records  # noqa: E402, F401
