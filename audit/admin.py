"""The creator's read-only view of the audit trail, and the mixin that makes any admin audited."""

from __future__ import annotations

import functools
import json

from django.contrib import admin
from django.contrib.admin import helpers
from django.db import connection, transaction
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django_tenants.utils import get_public_schema_name

from audit.models import AuditEntry
from audit.services import audit_diff, audit_record, model_snapshot
from core.admin_readonly import ReadOnlyAdmin
from core.loops import failures_retry
from core.models import LoopFailure


def _on_tenant() -> bool:
    return connection.schema_name != get_public_schema_name()


class AuditedAdminMixin:
    """Records an AuditEntry for every add, change, delete and action made through this admin.

        @admin.register(Offer)
        class OfferAdmin(AuditedAdminMixin, admin.ModelAdmin): ...

    Rows are written inside the admin's own transaction, with the field-level diff
    (`{"field": [old, new]}`), the staff user, their address and user agent. Actions are
    recorded per selected object, with what the action changed on it. `audit_exclude_fields`
    keeps noisy or derived fields out of the diffs; fields named like secrets are masked anyway.
    """

    audit_exclude_fields: tuple[str, ...] = ()
    # Actions that write their own, more specific rows (a refund action records each Refund
    # it creates as "payments.refund.issue"): the generic per-object row would only repeat it.
    audit_self_recorded_actions: tuple[str, ...] = ()

    def action_page(
        self,
        request,
        queryset,
        *,
        action: str,
        title: str,
        form,
        rows=(),
        submit_label: str = "Yes, go ahead",
        intro: str = "",
        template: str = "admin/action_form.html",
        **extra,
    ):
        """The intermediate page of an action (a confirmation or a small form): it posts the
        same action and selection back with "apply". Nothing is recorded for showing it."""
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "queryset": queryset,
            "form": form,
            "rows": rows,
            "intro": intro,
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "submit_label": submit_label,
            **extra,
        }
        return TemplateResponse(request, template, context)

    def _audit_label(self) -> str:
        return self.model._meta.label_lower

    def _audit_snapshot(self, obj) -> dict:
        snap = model_snapshot(obj)
        for name in self.audit_exclude_fields:
            snap.pop(name, None)
            snap.pop(f"{name}_id", None)
        return snap

    def _audit_before(self, obj) -> dict:
        if obj.pk is None:
            return {}
        old = type(obj)._default_manager.filter(pk=obj.pk).first()
        return self._audit_snapshot(old) if old is not None else {}

    def save_model(self, request, obj, form, change):
        before = self._audit_before(obj) if change else {}
        super().save_model(request, obj, form, change)
        audit_record(
            request_or_actor=request,
            action=f"{self._audit_label()}.{'change' if change else 'add'}",
            obj=obj,
            changes=audit_diff(before, self._audit_snapshot(obj)),
            summary=f"{'Changed' if change else 'Added'} {obj._meta.verbose_name} “{obj}”",
        )

    def save_formset(self, request, form, formset, change):
        befores = {
            f.instance.pk: self._audit_before(f.instance)
            for f in formset.initial_forms
            if f.instance.pk is not None
        }
        # Deleting clears obj.pk, so remember who is going before the formset saves.
        doomed = {id(f.instance): f.instance.pk for f in getattr(formset, "deleted_forms", [])}
        super().save_formset(request, form, formset, change)
        on = f"inline on “{form.instance}”"
        for obj in formset.new_objects:
            audit_record(
                request_or_actor=request,
                action=f"{obj._meta.label_lower}.add",
                obj=obj,
                changes=audit_diff({}, model_snapshot(obj)),
                summary=f"Added {obj._meta.verbose_name} “{obj}” {on}",
            )
        for obj, _fields in formset.changed_objects:
            audit_record(
                request_or_actor=request,
                action=f"{obj._meta.label_lower}.change",
                obj=obj,
                changes=audit_diff(befores.get(obj.pk, {}), model_snapshot(obj)),
                summary=f"Changed {obj._meta.verbose_name} “{obj}” {on}",
            )
        for obj in formset.deleted_objects:
            pk = doomed.get(id(obj), obj.pk)
            audit_record(
                request_or_actor=request,
                action=f"{obj._meta.label_lower}.delete",
                object_type=obj._meta.label_lower,
                object_id=str(pk),
                changes=audit_diff(befores.get(pk, {}), {}),
                summary=f"Deleted {obj._meta.verbose_name} “{obj}” {on}",
            )

    def _audit_delete(self, request, obj) -> None:
        audit_record(
            request_or_actor=request,
            action=f"{self._audit_label()}.delete",
            obj=obj,
            changes=audit_diff(self._audit_snapshot(obj), {}),
            summary=f"Deleted {obj._meta.verbose_name} “{obj}” in the admin",
        )

    def delete_model(self, request, obj):
        self._audit_delete(request, obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self._audit_delete(request, obj)
        super().delete_queryset(request, queryset)

    def get_actions(self, request):
        actions = super().get_actions(request)
        return {
            name: (
                func
                if name == "delete_selected" or name in self.audit_self_recorded_actions
                else self._audited_action(func, name),
                name,
                desc,
            )
            for name, (func, name, desc) in actions.items()
        }

    def _audited_action(self, func, name: str):
        # delete_selected is left alone: it deletes through delete_queryset, audited above,
        # and only after its confirmation page.
        @functools.wraps(func)
        def run(modeladmin, request, queryset):
            # Django runs actions outside any transaction: the change and its rows commit
            # together or not at all. (Actions that call a gateway record themselves and are
            # listed in audit_self_recorded_actions, so no network call happens in here.)
            with transaction.atomic():
                return _run(modeladmin, request, queryset)

        def _run(modeladmin, request, queryset):
            befores = {obj.pk: self._audit_snapshot(obj) for obj in queryset}
            response = func(modeladmin, request, queryset)
            afters = {
                obj.pk: obj for obj in self.model._default_manager.filter(pk__in=list(befores))
            }
            # An action that answers with its own page (a confirmation, a form asking for a
            # reason) has not acted yet: only rows it really changed are recorded then.
            intermediate = response is not None and getattr(response, "status_code", 0) == 200
            for pk, before in befores.items():
                obj = afters.get(pk)
                changes = audit_diff(before, self._audit_snapshot(obj) if obj else {})
                if intermediate and not changes:
                    continue
                audit_record(
                    request_or_actor=request,
                    action=f"{self._audit_label()}.action.{name}",
                    obj=obj,
                    object_type=self._audit_label(),
                    object_id=str(pk),
                    changes=changes,
                    summary=f"Ran “{name}” from the admin",
                )
            return response

        return run


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Visible to the creator's staff, never editable by anyone (the database agrees)."""

    list_display = (
        "occurred_at",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "ip_address",
    )
    list_filter = ("action", "actor_kind", "object_type")
    search_fields = ("actor_label", "action", "object_id", "object_repr", "summary")
    date_hierarchy = "occurred_at"
    actions = None
    fields = (
        "occurred_at",
        "actor_kind",
        "actor_id",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "summary",
        "changes_pretty",
        "ip_address",
        "user_agent",
    )
    readonly_fields = fields

    @admin.display(description="changes")
    def changes_pretty(self, entry: AuditEntry):
        return format_html("<pre>{}</pre>", json.dumps(entry.changes, indent=2, ensure_ascii=False))

    def has_module_permission(self, request):
        return _on_tenant() and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return _on_tenant() and super().has_view_permission(request, obj)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# "Needs attention": the records the periodic loops gave up on (core/loops.py). The model is
# core's, but its admin is audited ("Try again" writes an audit row), and core imports no app,
# so the admin lives here, beside the mixin that audits it.
@admin.register(LoopFailure)
class LoopFailureAdmin(AuditedAdminMixin, ReadOnlyAdmin):
    """A creator sees the records of their own store that failed in a loop: quarantined ones
    (no longer retried) first, with the reason. The platform's admin sees every store's.
    "Try again" (audited) clears the selected rows, so their loops take the records up again."""

    list_display = [
        "label_or_id",
        "loop",
        "tries",
        "quarantined_at",
        "last_failed_at",
        "last_error",
    ]
    list_filter = ["loop", ("quarantined_at", admin.EmptyFieldListFilter)]
    search_fields = ["record_id", "label", "last_error"]
    ordering = ["quarantined_at", "-last_failed_at"]
    actions = ["try_again"]

    def get_queryset(self, request):
        rows = super().get_queryset(request)
        if connection.schema_name != get_public_schema_name():
            rows = rows.filter(schema_name=connection.schema_name)
        return rows

    @admin.display(description="record", ordering="record_id")
    def label_or_id(self, obj: LoopFailure) -> str:
        return obj.label or obj.record_id

    @admin.action(description="Try the selected records again")
    def try_again(self, request, queryset):
        on_platform = connection.schema_name == get_public_schema_name()
        count = failures_retry(
            ids=list(queryset.values_list("pk", flat=True)),
            schema_name="*" if on_platform else connection.schema_name,
        )
        self.message_user(request, f"{count} record(s) will be tried again on the next run.")
