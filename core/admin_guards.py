"""Guards mixed into every ModelAdmin (`StoreAdminSite.register`, Django's users and groups
included) for two requests Django's admin answers with a 500.

- **An action's selection that names no row.** `response_action` filters the list by the
  posted `_selected_action` values as they come: text for an integer id raised a ValueError.
  Such a selection is refused with a message on the list, as Django does an empty one.
- **A save that loses a race on a unique column.** The form checks uniqueness, then saves: a
  double-clicked Save on a new product (two POSTs at once) passed the check twice and the
  second INSERT hit the unique constraint. The form's transaction is rolled back whole, and
  the creator is sent to the list, where the first save is, with a message saying nothing
  more was saved.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.http import HttpResponseRedirect
from django.urls import NoReverseMatch, reverse

CONFLICT = (
    "Another save of the same record landed at the same moment (a second click?) and this one "
    "conflicts with it: nothing more was saved. The list shows what is there now."
)


class AdminGuards:
    def response_action(self, request, queryset):
        pk = self.model._meta.pk
        try:
            for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
                pk.get_prep_value(pk.to_python(value))
        except (ValidationError, ValueError, TypeError):
            self.message_user(
                request,
                "The selection names no row of this list: nothing was changed.",
                messages.ERROR,
            )
            return None  # Django redirects back to the list with the message
        return super().response_action(request, queryset)

    def changeform_view(self, request, *args, **kwargs):
        try:
            return super().changeform_view(request, *args, **kwargs)
        except IntegrityError:  # the form's own transaction is rolled back whole
            if request.method != "POST":
                raise
            self.message_user(request, CONFLICT, messages.ERROR)
            opts = self.model._meta
            try:
                back = reverse(
                    f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_changelist"
                )
            except NoReverseMatch:
                back = request.get_full_path()
            return HttpResponseRedirect(back)


def guarded(admin_class: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    """`admin_class` with the guards (itself if it has them already)."""
    if issubclass(admin_class, AdminGuards):
        return admin_class
    return type(admin_class.__name__, (AdminGuards, admin_class), {})
