"""The store's team: roles, email invitations and role changes (each audited).

Roles are Django groups with permissions in the store's own schema (auth is a tenant app):

- **owner**: a superuser of the store. Everything, including payouts, keys and the team.
- **manager**: everything in the store's admin except making or unmaking owners; may
  invite managers and support, refund without the support limit.
- **support**: sees orders and customers and refunds them up to the store's
  `StoreSettings.support_refund_limit` per order (`storefront.services.refunds`); nothing of
  offers, products, API keys, webhooks, payouts, domains or store settings (the admin
  answers 403: the permissions are missing, not only the links).

The groups' permissions are written from `SUPPORT_PERMISSIONS` and `_MANAGED_APPS` whenever
a role is given, so a store's groups follow the code. An invitation's link is signed
(schema, row, nonce) and expires after `INVITATION_DAYS`; accepting it sets the member's
password, once.
"""

from __future__ import annotations

import datetime as dt
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import Group, Permission
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from audit.services import audit_record
from core.boundary import db_id
from core.identity import email_key
from storefront.models import StaffInvitation, StaffRole

INVITATION_DAYS = 7
_SALT = "storefront.team.invitation"

# What each non-owner role may do, as "app_label.codename" (owners are superusers).
_MANAGED_APPS = ("storefront", "offers", "partners", "payments", "analytics")
SUPPORT_PERMISSIONS = (
    "storefront.view_order",
    "storefront.change_order",  # the admin's refund actions need it
    "storefront.view_customer",
    "payments.view_refund",
)
ROLE_GROUPS = {StaffRole.MANAGER: "Manager", StaffRole.SUPPORT: "Support"}


class TeamRefused(ValueError):
    """A team change that is not allowed, with the reason to show."""


def _permissions_for(role: str) -> list[Permission]:
    if role == StaffRole.SUPPORT:
        query = Q()
        for perm in SUPPORT_PERMISSIONS:
            app_label, codename = perm.split(".")
            query |= Q(content_type__app_label=app_label, codename=codename)
        return list(Permission.objects.filter(query))
    # Managers: every permission of the product apps, the audit trail to read; the team page
    # too (the rules below keep owners out of their reach).
    return list(
        Permission.objects.filter(
            Q(content_type__app_label__in=_MANAGED_APPS)
            | Q(content_type__app_label="audit", codename__startswith="view_")
        )
    )


def role_group(role: str) -> Group:
    """The store's group for `role`, its permissions set from the code."""
    group, _ = Group.objects.get_or_create(name=ROLE_GROUPS[role])
    group.permissions.set(_permissions_for(role))
    return group


def user_role(user) -> str | None:
    if not user.is_active or not user.is_staff:
        return None
    if user.is_superuser:
        return StaffRole.OWNER
    names = set(user.groups.values_list("name", flat=True))
    for role, name in ROLE_GROUPS.items():
        if name in names:
            return role
    return None


def _may_manage_team(user) -> bool:
    return user.is_active and user.is_staff and user.has_perm("storefront.manage_team")


def _check_grant(*, actor_user, role: str) -> None:
    if role not in StaffRole.values:
        raise TeamRefused("Choose a role: owner, manager or support.")
    if not _may_manage_team(actor_user):
        raise TeamRefused("Only the owner and managers can change the team.")
    if role == StaffRole.OWNER and not actor_user.is_superuser:
        raise TeamRefused("Only an owner can make someone an owner.")


def _role_apply(user, role: str) -> None:
    """Give `user` exactly `role` (inside the caller's transaction)."""
    user.is_staff = True
    user.is_superuser = role == StaffRole.OWNER
    user.save(update_fields=["is_staff", "is_superuser"])
    user.groups.remove(*Group.objects.filter(name__in=ROLE_GROUPS.values()))
    if role != StaffRole.OWNER:
        user.groups.add(role_group(role))


# --- invitations -----------------------------------------------------------------------------


def invitation_token(invitation: StaffInvitation) -> str:
    return signing.dumps(
        {"s": connection.schema_name, "i": invitation.pk, "n": invitation.nonce}, salt=_SALT
    )


def invitation_create(*, actor_user, request, email: str, role: str, accept_url) -> StaffInvitation:
    """Invite `email` with `role` and mail the link (`accept_url(token)` makes it absolute).

    Refused (TeamRefused) for a bad address, a role the inviter may not give, or an address
    that is already an active member."""
    _check_grant(actor_user=actor_user, role=role)
    try:
        validate_email(email)
    except ValidationError as exc:
        raise TeamRefused("Enter a valid email address.") from exc
    email = email_key(email)
    members = get_user_model().objects.filter(is_active=True, is_staff=True)
    if members.filter(Q(email__iexact=email) | Q(username__iexact=email)).exists():
        raise TeamRefused(f"{email} is already a member of this store's team.")
    with transaction.atomic():
        invitation = StaffInvitation.objects.create(
            email=email,
            role=role,
            nonce=secrets.token_hex(16),
            invited_by=actor_user,
            expires_at=timezone.now() + dt.timedelta(days=INVITATION_DAYS),
        )
        audit_record(
            request_or_actor=request or actor_user,
            action="team.invitation.create",
            obj=invitation,
            changes={"email": email, "role": [None, role]},
            summary=f"Invited {email} as {invitation.get_role_display()}",
        )
        link = accept_url(invitation_token(invitation))
        transaction.on_commit(
            lambda: send_mail(
                f"You are invited to help run {connection.tenant.display_name}",
                f"{actor_user.get_username()} invited you to the store's admin as "
                f"{invitation.get_role_display().lower()}.\n\nChoose your password here "
                f"(the link works once, for {INVITATION_DAYS} days):\n{link}\n\n"
                "If you did not expect this, ignore this email.",
                settings.DEFAULT_FROM_EMAIL,
                [email],
            )
        )
    return invitation


def invitation_open(*, signed: str) -> StaffInvitation:
    """The invitation a link names, if it can still be accepted (TeamRefused otherwise)."""
    try:
        data = signing.loads(signed, salt=_SALT, max_age=dt.timedelta(days=INVITATION_DAYS))
    except signing.SignatureExpired as exc:
        raise TeamRefused("This invitation has expired: ask for a new one.") from exc
    except signing.BadSignature as exc:
        raise TeamRefused("This invitation link is not valid.") from exc
    if not isinstance(data, dict) or data.get("s") != connection.schema_name:
        raise TeamRefused("This invitation link is not valid.")
    invitation_id, nonce = db_id(data.get("i")), data.get("n")
    if invitation_id is None or not isinstance(nonce, str):
        raise TeamRefused("This invitation link is not valid.")
    invitation = StaffInvitation.objects.filter(pk=invitation_id, nonce=nonce).first()
    if invitation is None or invitation.revoked_at is not None:
        raise TeamRefused("This invitation was withdrawn.")
    if invitation.accepted_at is not None:
        raise TeamRefused("This invitation was already used: log in instead.")
    if invitation.expires_at <= timezone.now():
        raise TeamRefused("This invitation has expired: ask for a new one.")
    return invitation


def invitation_accept(*, signed: str, password: str, request=None):
    """Make the member with the invitation's role and the password they chose. Once."""
    invitation = invitation_open(signed=signed)
    User = get_user_model()
    candidate = User(username=invitation.email, email=invitation.email)
    try:
        password_validation.validate_password(password, candidate)
    except ValidationError as exc:
        raise TeamRefused(" ".join(exc.messages)) from exc
    with transaction.atomic():
        claimed = StaffInvitation.objects.filter(
            pk=invitation.pk,
            accepted_at__isnull=True,
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
        ).update(accepted_at=timezone.now())
        if not claimed:
            raise TeamRefused("This invitation was already used: log in instead.")
        user = User.objects.filter(username__iexact=invitation.email).first()
        if user is None:
            # Two invitations of one address accepted at once: the second INSERT waits for
            # the first, then reads its row (get_or_create's retry), not a unique-violation 500.
            user, _ = User.objects.get_or_create(
                username=invitation.email, defaults={"email": invitation.email}
            )
        user.is_active = True
        user.set_password(password)
        user.save()
        _role_apply(user, invitation.role)
        StaffInvitation.objects.filter(pk=invitation.pk).update(accepted_user=user)
        audit_record(
            request_or_actor=user,
            action="team.invitation.accept",
            obj=invitation,
            changes={"user": user.pk, "role": [None, invitation.role]},
            summary=f"{invitation.email} joined as {invitation.get_role_display()}",
        )
    return user


def invitation_revoke(*, actor_user, request, invitation: StaffInvitation) -> bool:
    _check_grant(actor_user=actor_user, role=invitation.role)
    with transaction.atomic():
        done = StaffInvitation.objects.filter(
            pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True
        ).update(revoked_at=timezone.now())
        if done:
            audit_record(
                request_or_actor=request or actor_user,
                action="team.invitation.revoke",
                obj=invitation,
                summary=f"Withdrew the invitation of {invitation.email}",
            )
    return bool(done)


# --- members ---------------------------------------------------------------------------------


def _owners_left(excluding) -> int:
    return (
        get_user_model()
        .objects.filter(is_superuser=True, is_active=True, is_staff=True)
        .exclude(pk=excluding.pk)
        .count()
    )


def member_role_change(*, actor_user, request, member, role: str | None) -> bool:
    """Give `member` `role`, or remove them from the team (`role=None`: no admin access).

    A manager cannot change or remove an owner, nobody can change their own role, and the
    store always keeps one owner. Audited; False if nothing changed."""
    if role is not None:
        _check_grant(actor_user=actor_user, role=role)
    elif not _may_manage_team(actor_user):
        raise TeamRefused("Only the owner and managers can change the team.")
    if member.pk == actor_user.pk:
        raise TeamRefused("You cannot change your own role: ask another owner.")
    User = get_user_model()
    with transaction.atomic():
        # Every owner's row, in one order, then the actor afresh: two owners demoting each
        # other at once are serialised here, and the second finds it is no owner any more.
        list(User.objects.select_for_update().filter(is_superuser=True).order_by("pk"))
        actor_user = User.objects.get(pk=actor_user.pk)
        if role is not None:
            _check_grant(actor_user=actor_user, role=role)
        elif not _may_manage_team(actor_user):
            raise TeamRefused("Only the owner and managers can change the team.")
        member = User.objects.select_for_update().get(pk=member.pk)
        before = user_role(member)
        if before == StaffRole.OWNER and not actor_user.is_superuser:
            raise TeamRefused("Only an owner can change an owner's role.")
        if before == StaffRole.OWNER and role != StaffRole.OWNER and not _owners_left(member):
            raise TeamRefused("The store needs an owner: make someone else owner first.")
        if before == role:
            return False
        if role is None:
            member.is_staff = False
            member.is_superuser = False
            member.save(update_fields=["is_staff", "is_superuser"])
            member.groups.remove(*Group.objects.filter(name__in=ROLE_GROUPS.values()))
        else:
            _role_apply(member, role)
        audit_record(
            request_or_actor=request or actor_user,
            action="team.role.change",
            obj=member,
            changes={"role": [before, role]},
            summary=f"{member.get_username()}: {before or 'no role'} → {role or 'removed'}",
        )
    return True
