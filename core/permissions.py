"""Store-admin views that need a permission as well as staff status: 403 for staff without it."""

from __future__ import annotations

from functools import wraps

from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied


def staff_permission_required(perm: str):
    """Like `staff_member_required` (anonymous visitors go to the login page), then
    PermissionDenied (403) for a staff member without `perm`: a role that may not see a
    page cannot reach it by its URL, not only miss its link."""

    def decorator(view):
        @wraps(view)
        def checked(request, *args, **kwargs):
            if not request.user.has_perm(perm):
                raise PermissionDenied(f"Your role in this store does not include {perm}.")
            return view(request, *args, **kwargs)

        return staff_member_required(checked)

    return decorator
