"""The store admin's pages for buyers' privacy requests and the store's documents (invoices,
credit notes, downloads and license keys per line). Imported by storefront/admin.py."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.utils.html import format_html

from core.admin_readonly import ReadOnlyAdmin
from storefront.models import (
    CreditNote,
    Invoice,
    LineAccess,
    PrivacyRequest,
    PrivacyRequestChannel,
    PrivacyRequestKind,
)


class PrivacyRequestForm(forms.ModelForm):
    email = forms.EmailField(
        help_text="The buyer's address. The request is recorded and run in the background; "
        "the answer is the same whether or not the store knows the address."
    )

    class Meta:
        model = PrivacyRequest
        fields = ["kind"]


@admin.register(PrivacyRequest)
class PrivacyRequestAdmin(admin.ModelAdmin):
    """Buyers' export and erasure requests: what was asked, through which channel, its state
    and when it was done (storefront.privacy). Requests are made here, by the partner API or
    from the buyer's signed link; rows are written by the service only."""

    list_display = [
        "pk",
        "kind",
        "channel",
        "state",
        "requested_by",
        "requested_at",
        "done_at",
        "export_link",
    ]
    list_filter = ["kind", "state", "channel", "requested_at"]
    readonly_fields = [
        "kind",
        "channel",
        "state",
        "requested_by",
        "requested_at",
        "done_at",
        "summary",
        "error",
        "export_link",
    ]
    exclude = ["email", "email_digest", "result"]
    date_hierarchy = "requested_at"

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            return PrivacyRequestForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["email", "kind"]
        return self.readonly_fields

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        from storefront.privacy.services import privacy_request_create

        created = privacy_request_create(
            email=form.cleaned_data["email"],
            kind=form.cleaned_data["kind"],
            channel=PrivacyRequestChannel.ADMIN,
            requested_by=request.user.get_username(),
            actor=request,
        )
        obj.pk, obj.state, obj.requested_at = created.pk, created.state, created.requested_at

    def log_addition(self, request, obj, message):
        return None  # the service wrote the audit row

    def get_urls(self):
        from django.urls import path

        return [
            path(
                "<int:pk>/export.json",
                self.admin_site.admin_view(self.export_view),
                name="storefront_privacyrequest_export",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="Export")
    def export_link(self, obj):
        from django.urls import reverse

        if obj.kind != PrivacyRequestKind.EXPORT or obj.result is None:
            return "—"
        url = reverse("admin:storefront_privacyrequest_export", args=[obj.pk])
        return format_html('<a href="{}">Download JSON</a>', url)

    def export_view(self, request, pk: int):
        from django.http import Http404, JsonResponse

        if not self.has_view_permission(request):
            raise Http404
        row = PrivacyRequest.objects.filter(pk=pk, kind=PrivacyRequestKind.EXPORT).first()
        if row is None or row.result is None:
            raise Http404("No export document (not done yet, or pruned).")
        response = JsonResponse(row.result, json_dumps_params={"indent": 2})
        response["Content-Disposition"] = f'attachment; filename="export-{pk}.json"'
        return response


# --- delivery and documents ----------------------------------------------------------------


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    """Issued invoices, one per successful payment. Read only: frozen when issued, numbered
    by the store's counter (storefront.services.invoices)."""

    list_display = ["__str__", "order", "issued_at", "total_amount", "currency"]
    search_fields = ["order__token", "order__customer__email"]
    date_hierarchy = "issued_at"


@admin.register(CreditNote)
class CreditNoteAdmin(ReadOnlyAdmin):
    """Credit notes, one per refund, against the refunded payment's invoice. Read only."""

    list_display = ["__str__", "invoice", "refund_ref", "issued_at", "total_amount", "currency"]
    search_fields = ["refund_ref", "invoice__order__token"]


@admin.register(LineAccess)
class LineAccessAdmin(ReadOnlyAdmin):
    """Downloads counted per purchased line and its license key. Read only: whether a key or
    a download still works follows the line's payment (refunds, disputes)."""

    list_display = ["line", "downloads", "last_download_at", "license_key", "created_at"]
    search_fields = ["license_key", "line__order__token", "line__order__customer__email"]
