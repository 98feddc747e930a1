"""Creators (tenants) and their domains, in the public schema."""

from django.db import models
from django_tenants.models import DomainMixin, TenantMixin

from core.fields import SealedCharField


class Creator(TenantMixin):
    slug = models.SlugField(max_length=63, unique=True)  # the store's subdomain (tenants.names)
    display_name = models.CharField(max_length=120)
    owner_email = models.EmailField()
    created_at = models.DateTimeField(auto_now_add=True)
    # Onboarding state (tenants.signup). A store takes no payment until its owner's email is
    # verified; operators' stores (create_creator) count as verified when made.
    email_verified_at = models.DateTimeField(null=True, blank=True)
    previewed_at = models.DateTimeField(null=True, blank=True)
    # Self-serve stores sell only through their own connected account (payments.connect);
    # operators' stores charge on the platform account as before until they connect one.
    payouts_required = models.BooleanField(default=False, db_default=False)
    # The store's connected account at the gateway: routes Connect webhooks to the store.
    payout_account_ref = models.CharField(max_length=64, blank=True, default="", db_default="")
    # The platform's fee on each settled charge, taken before the rest is transferred to the
    # store's connected account (payments.transfers): basis points + fixed minor units. Empty
    # means the defaults PLATFORM_FEE_BPS / PLATFORM_FEE_FIXED.
    fee_bps = models.PositiveIntegerField(null=True, blank=True)
    fee_fixed = models.PositiveIntegerField(null=True, blank=True)

    auto_create_schema = True
    auto_drop_schema = True  # deleting a creator drops its schema: nothing half-left

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.UniqueConstraint(
                fields=["payout_account_ref"],
                condition=~models.Q(payout_account_ref=""),
                name="tenants_creator_payout_account_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.display_name or self.schema_name

    def create_schema(self, check_if_exists=False, sync_schema=True, verbosity=1):
        """Clone the migrated template instead of replaying every migration (provisioning.py)."""
        from django_tenants.utils import schema_exists

        from tenants.provisioning import schema_clone

        if check_if_exists and schema_exists(self.schema_name):
            return False
        if sync_schema:
            schema_clone(self.schema_name)
        return True


class Domain(DomainMixin):
    def __str__(self) -> str:
        return self.domain


class SpareSchema(models.Model):
    """A schema cloned from the template ahead of time, waiting for a creator (tenants.pool).

    Sign-up takes one (`ALTER SCHEMA … RENAME`, O(1)) instead of building ~270 relations while
    the creator waits; beat keeps `TENANT_SPARE_SCHEMAS` of them. No domain points at a spare,
    so nothing routes into one; `migrate_tenants` keeps them current like any creator schema.
    """

    schema_name = models.CharField(max_length=63, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.schema_name


class LoginHandoff(models.Model):
    """A one-time login from the platform's domain into one store's admin (tenants.signup).

    The link carries a signed (creator, nonce); this row makes it single-use and short-lived:
    consuming it is one UPDATE … WHERE used_at IS NULL AND expires_at > now().
    """

    creator = models.ForeignKey(Creator, on_delete=models.CASCADE, related_name="+")
    nonce = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"hand-off to {self.creator_id} ({'used' if self.used_at else 'unused'})"


class CustomDomain(models.Model):
    """A host name a creator brings (`shop.example.com`), from added to verified (tenants.domains).

    It routes only once verified: verification creates the store's `Domain` row, which is what
    `tenants.routing` looks up, and removal deletes it (the row's DELETE trigger empties every
    process's routing cache). Until then several stores may have the same name pending: the
    one whose TXT token the name's owner publishes verifies it; a verified name belongs to one
    store (the partial unique constraint here, and `Domain.domain` being unique).
    """

    creator = models.ForeignKey(Creator, on_delete=models.CASCADE, related_name="custom_domains")
    domain = models.CharField(max_length=253)  # core.identity.domain_key form
    token = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["domain"]
        constraints = [
            models.UniqueConstraint(
                fields=["creator", "domain"], name="tenants_customdomain_once_per_store"
            ),
            models.UniqueConstraint(
                fields=["domain"],
                condition=models.Q(verified_at__isnull=False),
                name="tenants_customdomain_verified_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.domain} ({'verified' if self.verified_at else 'pending'})"


class SendingDomain(models.Model):
    """A domain a creator sends the store's email from (`mail.shop.example.com`), once its SPF
    and DKIM records are published (tenants.sending). Until verified, mail goes out from the
    platform's address with the store's name; after, from `<local part>@<domain>`, signed with
    this row's DKIM key. The private key is sealed at rest like webhook secrets."""

    creator = models.ForeignKey(Creator, on_delete=models.CASCADE, related_name="sending_domains")
    domain = models.CharField(max_length=253)  # core.identity.domain_key form
    local_part = models.CharField(max_length=64, default="store")
    dkim_selector = models.CharField(max_length=63)
    # A 2048-bit RSA key in PEM (≈1.7 kB; sealed, ≈2.4 kB).
    dkim_private_key = SealedCharField(max_length=4000, editable=False)
    dkim_public_key = models.TextField()  # base64 DER (SubjectPublicKeyInfo), the DNS `p=`
    created_at = models.DateTimeField(auto_now_add=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["domain"]
        constraints = [
            # One sending domain per store: the From address is not a choice per message.
            models.UniqueConstraint(fields=["creator"], name="tenants_sendingdomain_one_per_store"),
            models.UniqueConstraint(
                fields=["domain"],
                condition=models.Q(verified_at__isnull=False),
                name="tenants_sendingdomain_verified_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.domain} ({'verified' if self.verified_at else 'pending'})"

    @property
    def from_address(self) -> str:
        return f"{self.local_part}@{self.domain}"


class MailSuppression(models.Model):
    """An address the platform must not mail again: a hard bounce or a spam complaint reported
    by the mail provider (tenants.mailevents). Platform-wide, because every store's mail leaves
    through the same provider and one address's reputation is shared.

    Only a keyed digest of the address is kept (core.identity.email_digest), never the address:
    a buyer's erasure must leave no copy of it, and the list must still work afterwards."""

    class Reason(models.TextChoices):
        BOUNCE = "bounce", "Hard bounce"
        COMPLAINT = "complaint", "Spam complaint"

    address_digest = models.CharField(max_length=64, unique=True)
    reason = models.CharField(max_length=12, choices=Reason.choices)
    source = models.CharField(max_length=20)  # "webhook" or "mailbox"
    detail = models.CharField(max_length=300, blank=True)  # the provider's diagnostic, redacted
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.reason} {self.address_digest[:12]}…"
