"""Charges, the ledger, refunds, gateway events and reconciliation findings: read only for the
creator, except marking a finding resolved and asking for a reconciliation run now."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse

from audit.admin import AuditedAdminMixin
from audit.services import audit_record
from core.admin_readonly import ReadOnlyAdmin
from core.tasks import enqueue
from payments.models import ChargeAttempt, LedgerEntry, Mismatch, Refund, WebhookEvent
from payments.services import mismatches_resolve


@admin.register(ChargeAttempt)
class ChargeAttemptAdmin(ReadOnlyAdmin):
    list_display = [
        "purpose",
        "amount",
        "currency",
        "status",
        "off_session",
        "demo",
        "created_at",
    ]
    list_filter = ["status", "off_session", "demo"]
    search_fields = ["purpose", "reference", "gateway_ref"]
    exclude = ["client_secret"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name != "client_secret"]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = [
        "kind",
        "reference",
        "line_key",
        "amount",
        "currency",
        "gateway_ref",
        "created_at",
    ]
    list_filter = ["kind", "currency"]
    search_fields = ["reference", "gateway_ref"]


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    """Refunds are made from the orders page (per line or whole order); here they are read."""

    list_display = [
        "reference",
        "line_key",
        "amount",
        "tax_amount",
        "currency",
        "status",
        "requested_by",
        "reason",
        "created_at",
    ]
    list_filter = ["status", "currency", "created_at"]
    search_fields = ["reference", "gateway_ref", "requested_by"]
    date_hierarchy = "created_at"


@admin.register(Mismatch)
class MismatchAdmin(AuditedAdminMixin, ReadOnlyAdmin):
    list_display = ["kind", "gateway_ref", "reference", "found_at", "resolved_at"]
    list_filter = ["kind", ("resolved_at", admin.EmptyFieldListFilter)]
    search_fields = ["gateway_ref", "reference", "detail"]
    date_hierarchy = "found_at"
    actions = ["mark_resolved"]

    def get_urls(self):
        return [
            path(
                "reconcile/",
                self.admin_site.admin_view(self.reconcile_view),
                name="payments_mismatch_reconcile",
            ),
            *super().get_urls(),
        ]

    @admin.action(description="Mark selected findings resolved")
    def mark_resolved(self, request, queryset):
        count = mismatches_resolve(ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Marked {count} finding(s) resolved.")

    def reconcile_view(self, request):
        """POST only: queue one reconciliation run of this store (re-reads the gateway)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_view_permission(request):
            raise PermissionDenied
        with transaction.atomic():
            enqueue("payments.reconcile")
            audit_record(
                request_or_actor=request,
                action="payments.reconcile.request",
                summary="Asked for a reconciliation run from the admin",
            )
        messages.success(request, "Reconciliation queued: findings appear here when it has run.")
        return HttpResponseRedirect(reverse("admin:payments_mismatch_changelist"))


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = [
        "event_type",
        "event_id",
        "object_id",
        "received_at",
        "processed_at",
        "deliveries",
    ]
    list_filter = ["event_type", ("processed_at", admin.EmptyFieldListFilter)]
    search_fields = ["event_id", "object_id"]
    date_hierarchy = "received_at"


from payments.models import PayoutAccount  # noqa: E402  (payouts: kept apart from the above)


@admin.register(PayoutAccount)
class PayoutAccountAdmin(ReadOnlyAdmin):
    """The store's connected account as last read from the gateway (payments.connect)."""

    list_display = [
        "account_ref",
        "state",
        "charges_enabled",
        "payouts_enabled",
        "details_submitted",
        "requirements_due",
        "disabled_reason",
        "synced_at",
    ]
    exclude = ["idempotency_key"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name != "idempotency_key"]


from payments.models import TransferAttempt  # noqa: E402


@admin.register(TransferAttempt)
class TransferAttemptAdmin(ReadOnlyAdmin):
    """What each settled charge sent to the store's payouts account, and the platform fee."""

    list_display = [
        "transfer_group",
        "gross",
        "fee",
        "amount",
        "currency",
        "status",
        "gateway_ref",
        "created_at",
    ]
    list_filter = ["status"]
    search_fields = ["transfer_group", "gateway_ref"]
    exclude = ["idempotency_key"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name != "idempotency_key"]


from payments.models import PayoutEntry, TransferReversal  # noqa: E402


@admin.register(TransferReversal)
class TransferReversalAdmin(ReadOnlyAdmin):
    """What refunds and lost disputes took back from the store's payouts account."""

    list_display = ["cause", "covered", "amount", "fee", "currency", "status", "created_at"]
    list_filter = ["status"]
    search_fields = ["cause", "gateway_ref"]
    exclude = ["idempotency_key"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name != "idempotency_key"]


@admin.register(PayoutEntry)
class PayoutEntryAdmin(ReadOnlyAdmin):
    """The payout ledger: every transfer to the store's payouts account and every reversal."""

    list_display = ["created_at", "kind", "reference", "gross", "fee", "amount", "currency"]
    list_filter = ["kind"]
    search_fields = ["reference", "gateway_ref"]


from core.money import Money  # noqa: E402
from payments.models import Dispute  # noqa: E402


@admin.register(Dispute)
class DisputeAdmin(ReadOnlyAdmin):
    """The store's disputes as the gateway last reported them (payments.disputes). Read only:
    evidence is submitted in the gateway's dashboard; the money is in the ledger."""

    list_display = [
        "gateway_ref",
        "status",
        "evidence_due",
        "disputed",
        "reason",
        "reference",
        "opened_at",
        "closed_at",
    ]
    list_filter = ["status", "reason"]
    search_fields = ["gateway_ref", "payment_ref", "reference"]
    date_hierarchy = "opened_at"

    @admin.display(description="evidence due by", ordering="evidence_due_by")
    def evidence_due(self, obj: Dispute) -> str:
        if obj.evidence_due_by is None:
            return "—"
        due = f"{obj.evidence_due_by:%-d %b %Y %H:%M} UTC"
        return due if obj.is_open else f"{due} (closed)"

    @admin.display(description="amount", ordering="amount")
    def disputed(self, obj: Dispute) -> str:
        return Money(obj.amount, obj.currency).format()
