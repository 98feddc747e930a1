"""The store's team: roles and email invitations (storefront/team.py)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class StaffRole(models.TextChoices):
    """The store's team roles (storefront/team.py maps them to groups and permissions)."""

    OWNER = "owner", "Owner"
    MANAGER = "manager", "Manager"
    SUPPORT = "support", "Support"


class StaffInvitation(models.Model):
    """An email invitation to join the store's admin with a role. The emailed link is signed
    and names this row and its nonce; accepting it sets the new member's password and moves
    `accepted_at` from NULL once (a conditional UPDATE), so a link works one time only."""

    email = models.EmailField()
    role = models.CharField(max_length=10, choices=StaffRole.choices)
    nonce = models.CharField(max_length=32, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("manage_team", "Can invite staff and change their roles"),
            ("refund_above_limit", "Can refund beyond the support refund limit"),
        ]

    def __str__(self) -> str:
        return f"{self.email} as {self.get_role_display()}"
