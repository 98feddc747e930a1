"""The store admin's Team page (invite by email with a role, change roles, withdraw
invitations) and the invitation's accept page. Thin: storefront/team.py does the work."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.http import HttpResponseNotFound, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from core.permissions import staff_permission_required
from storefront import team
from storefront.models import StaffInvitation, StaffRole

MANAGE = "storefront.manage_team"


def _members():
    users = get_user_model().objects.filter(is_staff=True, is_active=True).order_by("username")
    return [{"user": u, "role": team.user_role(u)} for u in users]


@staff_permission_required(MANAGE)
@require_http_methods(["GET", "POST"])
def team_page(request):
    error, entered, status = "", {"email": "", "role": StaffRole.SUPPORT}, 200
    if request.method == "POST":
        entered = {"email": request.POST.get("email", ""), "role": request.POST.get("role", "")}
        try:
            invitation = team.invitation_create(
                actor_user=request.user,
                request=request,
                email=entered["email"],
                role=entered["role"],
                accept_url=lambda token: request.build_absolute_uri(
                    reverse("store-team-join", args=[token])
                ),
            )
        except team.TeamRefused as exc:
            error, status = str(exc), 400
        else:
            messages.success(request, f"Invitation sent to {invitation.email}.")
            return HttpResponseRedirect(reverse("store-team"))
    roles = [
        (value, label)
        for value, label in StaffRole.choices
        if value != StaffRole.OWNER or request.user.is_superuser
    ]
    pending = StaffInvitation.objects.filter(accepted_at__isnull=True, revoked_at__isnull=True)
    return render(
        request,
        "storefront/team.html",
        {
            "title": "Team",
            "members": _members(),
            "invitations": pending,
            "roles": roles,
            "error": error,
            "entered": entered,
        },
        status=status,
    )


@staff_permission_required(MANAGE)
@require_POST
def team_role(request, user_id: int):
    member = get_user_model().objects.filter(pk=user_id).first()
    if member is None:
        return HttpResponseNotFound("No such member in this store.")
    role = request.POST.get("role", "") or None  # "" = remove from the team
    try:
        changed = team.member_role_change(
            actor_user=request.user, request=request, member=member, role=role
        )
    except team.TeamRefused as exc:
        messages.error(request, f"{member.get_username()}: not changed, {exc}")
        return HttpResponseRedirect(reverse("store-team"))
    if changed:
        messages.success(request, f"{member.get_username()} is now {role or 'off the team'}.")
    return HttpResponseRedirect(reverse("store-team"))


@staff_permission_required(MANAGE)
@require_POST
def team_invitation_revoke(request, pk: int):
    invitation = StaffInvitation.objects.filter(pk=pk).first()
    if invitation is None:
        return HttpResponseNotFound("No such invitation in this store.")
    try:
        team.invitation_revoke(actor_user=request.user, request=request, invitation=invitation)
    except team.TeamRefused as exc:
        messages.error(request, str(exc))
    return HttpResponseRedirect(reverse("store-team"))


@require_http_methods(["GET", "POST"])
def team_join(request, token: str):
    """The emailed link: choose a password, become a member with the invited role."""
    try:
        invitation = team.invitation_open(signed=token)
    except team.TeamRefused as exc:
        return render(request, "storefront/team_join.html", {"refused": str(exc)}, status=400)
    error = ""
    if request.method == "POST":
        password = request.POST.get("password", "")
        if password != request.POST.get("password2", ""):
            error = "The two passwords differ."
        else:
            try:
                user = team.invitation_accept(signed=token, password=password, request=request)
            except team.TeamRefused as exc:
                error = str(exc)
            else:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                return HttpResponseRedirect(reverse("admin:index"))
    return render(
        request,
        "storefront/team_join.html",
        {"invitation": invitation, "error": error},
        status=400 if error else 200,
    )
