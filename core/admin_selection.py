"""An admin action's selection checked before Django queries it.

Django's `ModelAdmin.response_action` filters the list by the posted `_selected_action` values
as they come: a value that is no primary key (text for an integer id, as a hand-made or
replayed form may send) raised a ValueError there, a 500. `SelectionChecked` refuses such a
selection with a message on the list, as Django does an empty one, and nothing is changed.
`StoreAdminSite.register` mixes it into every ModelAdmin, Django's own (users, groups)
included.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError


class SelectionChecked:
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


def selection_checked(admin_class: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    """`admin_class` with the selection check (itself if it has it already)."""
    if issubclass(admin_class, SelectionChecked):
        return admin_class
    return type(admin_class.__name__, (SelectionChecked, admin_class), {})
