"""Vault, charge attempts, the ledger and gateway webhooks. Knows nothing of offers or orders:
callers refer to their own rows by opaque references (`reference`, `line_key`)."""

from django.db import models
from django.db.models import Q

from core.money import Money


class GatewayCustomer(models.Model):
    """A buyer at the gateway. Card data never reaches us: only the gateway's references."""

    email = models.EmailField(unique=True)
    gateway_ref = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.email


class SavedPaymentMethod(models.Model):
    """A vaulted card reference, saved only with the buyer's consent, for one-click offers."""

    customer = models.ForeignKey(GatewayCustomer, on_delete=models.CASCADE, related_name="methods")
    gateway_ref = models.CharField(max_length=100)
    consent_text = models.CharField(max_length=300)
    consent_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "gateway_ref"], name="vault_unique_method")
        ]

    def __str__(self) -> str:
        return f"{self.customer} · {self.gateway_ref}"


class AttemptStatus(models.TextChoices):
    CREATED = "created"  # committed, gateway not called yet
    IN_FLIGHT = "in_flight"  # the gateway call started; outcome unknown until recorded
    REQUIRES_ACTION = "requires_action"  # buyer must authenticate on-session
    PROCESSING = "processing"  # accepted by the gateway, not settled yet
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    CANCELED = "canceled"  # never sent (e.g. the primary payment failed)


ATTEMPT_TRANSITIONS: dict[str, set[str]] = {
    AttemptStatus.CREATED: {AttemptStatus.IN_FLIGHT, AttemptStatus.CANCELED},
    AttemptStatus.IN_FLIGHT: {
        AttemptStatus.IN_FLIGHT,  # a retry with the same idempotency key
        AttemptStatus.REQUIRES_ACTION,
        AttemptStatus.PROCESSING,
        AttemptStatus.SUCCEEDED,
        AttemptStatus.DECLINED,
        AttemptStatus.CANCELED,
    },
    AttemptStatus.REQUIRES_ACTION: {
        AttemptStatus.SUCCEEDED,
        AttemptStatus.DECLINED,
        AttemptStatus.PROCESSING,
        AttemptStatus.CANCELED,
    },
    AttemptStatus.PROCESSING: {AttemptStatus.SUCCEEDED, AttemptStatus.DECLINED},
    AttemptStatus.SUCCEEDED: set(),
    AttemptStatus.DECLINED: set(),
    AttemptStatus.CANCELED: set(),
}
FINAL_ATTEMPT_STATUSES = {AttemptStatus.SUCCEEDED, AttemptStatus.DECLINED, AttemptStatus.CANCELED}


class ChargeAttempt(models.Model):
    """One intended charge. Committed with its idempotency key *before* the gateway call.

    `purpose` is unique: one purpose (e.g. "order:42:upsell") can never have two attempts,
    so concurrent accepts collapse to one row and one charge.
    """

    purpose = models.CharField(max_length=120, unique=True)
    idempotency_key = models.CharField(max_length=80, unique=True)
    reference = models.CharField(max_length=80, db_index=True)  # caller's id, e.g. "order:42"
    amount = models.PositiveIntegerField()  # minor units
    currency = models.CharField(max_length=3)
    customer_ref = models.CharField(max_length=100)
    payment_method_ref = models.CharField(max_length=100)
    off_session = models.BooleanField(default=False)
    # How the amount splits over the caller's lines: {"line:7": 4900, "line:8": 1200}.
    allocation = models.JSONField(default=dict)
    status = models.CharField(
        max_length=20, choices=AttemptStatus.choices, default=AttemptStatus.CREATED
    )
    gateway_ref = models.CharField(max_length=100, blank=True, db_index=True)
    client_secret = models.CharField(max_length=200, blank=True)
    decline_code = models.CharField(max_length=100, blank=True)
    message = models.CharField(max_length=300, blank=True)
    sends = models.PositiveIntegerField(default=0)  # gateway calls made with this key
    # Set by the demo's seeder alone (payments.demo.demo_attempts_mark), on the payments its
    # in-process gateway made: no gateway holds them, so their refunds are answered here.
    demo = models.BooleanField(
        default=False,
        db_default=False,
        editable=False,
        verbose_name="demo data",
        help_text="Seeded demo history: paid in the demo's in-process gateway, not at the "
        "payment gateway. Its refunds are recorded without a gateway call.",
    )
    # The platform's fee when the charge was made (payments.fees): its transfer takes this one
    # even if the store's fee changed since. None on charges from before it was kept.
    fee_bps = models.PositiveIntegerField(null=True, blank=True, editable=False)
    fee_fixed = models.PositiveIntegerField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["status", "created_at"],
                name="attempt_open_idx",
                condition=Q(status__in=["created", "in_flight", "processing", "requires_action"]),
            )
        ]

    def __str__(self) -> str:
        return f"{self.purpose} [{self.status}]"

    @property
    def money(self) -> Money:
        return Money(self.amount, self.currency)


class LedgerKind(models.TextChoices):
    CHARGE = "charge"
    REFUND = "refund"
    CHARGEBACK = "chargeback"
    # A won dispute's money coming back (Stripe's funds_reinstated): it cancels the
    # chargeback of the same dispute, line by line. Signed like a charge.
    REINSTATED = "reinstated", "chargeback reversed (dispute won)"


class LedgerEntry(models.Model):
    """Every cent charged, refunded or disputed, per caller line. Append-only.

    Unique per (kind, gateway_ref, line_key): recording the same gateway object twice (a
    replayed webhook, a reconciliation racing the request) is a no-op.
    """

    kind = models.CharField(max_length=12, choices=LedgerKind.choices)
    gateway_ref = models.CharField(max_length=100)
    reference = models.CharField(max_length=80, db_index=True)
    line_key = models.CharField(max_length=40)
    amount = models.PositiveIntegerField()  # minor units, always positive; kind gives the sign
    currency = models.CharField(max_length=3)
    attempt = models.ForeignKey(ChargeAttempt, null=True, blank=True, on_delete=models.PROTECT)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "ledger entry"
        verbose_name_plural = "ledger entries"
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "gateway_ref", "line_key"], name="ledger_unique_gateway_object"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.currency} {self.line_key}"


class DisputeStatus(models.TextChoices):
    """Stripe's dispute statuses. warning_* are inquiries (no money moves); won and lost are
    final."""

    WARNING_NEEDS_RESPONSE = "warning_needs_response", "Inquiry: needs response"
    WARNING_UNDER_REVIEW = "warning_under_review", "Inquiry: under review"
    WARNING_CLOSED = "warning_closed", "Inquiry closed"
    NEEDS_RESPONSE = "needs_response", "Needs response"
    UNDER_REVIEW = "under_review", "Under review"
    WON = "won", "Won"
    LOST = "lost", "Lost"


DISPUTE_OPEN_STATUSES = (
    DisputeStatus.WARNING_NEEDS_RESPONSE,
    DisputeStatus.WARNING_UNDER_REVIEW,
    DisputeStatus.NEEDS_RESPONSE,
    DisputeStatus.UNDER_REVIEW,
)
DISPUTE_FINAL_STATUSES = (DisputeStatus.WON, DisputeStatus.LOST, DisputeStatus.WARNING_CLOSED)


class Dispute(models.Model):
    """One gateway dispute of a payment, as last read from the gateway (payments.disputes).

    The money is in the ledger (a CHARGEBACK when the funds are withdrawn, a REINSTATED when
    a won dispute gives them back); this row is the dispute's lifecycle for the creator: its
    status, reason and the date by which evidence is due. Unique per gateway dispute, so
    replayed and reordered webhooks update one row; a final status never moves again."""

    gateway_ref = models.CharField(max_length=100, unique=True)
    payment_ref = models.CharField(max_length=100)
    reference = models.CharField(max_length=80, db_index=True)  # the order's (or renewal's)
    attempt = models.ForeignKey(ChargeAttempt, null=True, blank=True, on_delete=models.PROTECT)
    # The disputed amount per line key, allocated like the ledger's chargeback entries.
    lines = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=24, choices=DisputeStatus.choices)
    reason = models.CharField(max_length=60, blank=True)
    amount = models.PositiveIntegerField()  # minor units
    currency = models.CharField(max_length=3)
    evidence_due_by = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        verbose_name = "dispute (chargeback)"
        verbose_name_plural = "disputes (chargebacks)"

    def __str__(self) -> str:
        return f"dispute {self.gateway_ref} [{self.status}]"

    @property
    def is_open(self) -> bool:
        return self.status in DISPUTE_OPEN_STATUSES


class RefundStatus(models.TextChoices):
    CREATED = "created"
    IN_FLIGHT = "in_flight"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Refund(models.Model):
    """A refund of one line, committed (and counted against the line) before the gateway call."""

    idempotency_key = models.CharField(max_length=80, unique=True)
    reference = models.CharField(max_length=80, db_index=True)
    line_key = models.CharField(max_length=40)
    payment_ref = models.CharField(max_length=100)
    amount = models.PositiveIntegerField()  # minor units, tax included (line totals are)
    # The tax part of `amount`, reversed in proportion to the line's tax. Cumulative rounding
    # (see services.refund_create) makes a line's refunds add up to exactly its tax.
    tax_amount = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=200, blank=True)
    status = models.CharField(
        max_length=12, choices=RefundStatus.choices, default=RefundStatus.CREATED
    )
    gateway_ref = models.CharField(max_length=100, blank=True)
    requested_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"refund {self.amount} {self.currency} {self.line_key} [{self.status}]"


class WebhookEvent(models.Model):
    """A gateway event, stored unique by id before processing; a signal to re-read the object."""

    event_id = models.CharField(max_length=100, unique=True)
    event_type = models.CharField(max_length=100)
    object_type = models.CharField(max_length=50)
    object_id = models.CharField(max_length=100, db_index=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    deliveries = models.PositiveIntegerField(default=1)

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


class Mismatch(models.Model):
    """Something reconciliation found that does not add up, for the creator to look at."""

    class Kind(models.TextChoices):
        ORPHAN_CHARGE = "orphan_charge", "Gateway charge we have no attempt for"
        DUPLICATE_CHARGE = "duplicate_charge", "More than one gateway charge for one attempt"
        AMOUNT = "amount", "Amount differs from the gateway"
        REFUND_TOTAL = "refund_total", "Refund totals differ from the gateway"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    gateway_ref = models.CharField(max_length=100)
    reference = models.CharField(max_length=80, blank=True)
    detail = models.TextField()
    found_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "reconciliation mismatch"
        verbose_name_plural = "reconciliation mismatches"
        constraints = [
            models.UniqueConstraint(fields=["kind", "gateway_ref"], name="mismatch_unique")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.gateway_ref}"


class PayoutAccount(models.Model):
    """The store's connected account at the gateway (Stripe Connect, Express): where its money
    goes. One per store. The state fields mirror the gateway's account and are only ever
    written from a fresh read of it (payments.connect.payout_account_sync), never from a
    webhook's payload. `idempotency_key` is committed before the account is created, so a
    retry after a crash gets the same account back."""

    idempotency_key = models.CharField(max_length=100, unique=True)
    account_ref = models.CharField(max_length=100, blank=True, default="")
    charges_enabled = models.BooleanField(default=False)
    payouts_enabled = models.BooleanField(default=False)
    details_submitted = models.BooleanField(default=False)
    requirements_due = models.JSONField(default=list, blank=True)
    disabled_reason = models.CharField(max_length=100, blank=True, default="")
    synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account_ref"],
                condition=~Q(account_ref=""),
                name="payout_account_ref_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.account_ref or "(not created yet)"

    @property
    def state(self) -> str:
        if not self.account_ref:
            return "not created"
        if self.charges_enabled and self.payouts_enabled:
            return "active"
        if self.charges_enabled:
            return "charges enabled, payouts pending"
        if self.details_submitted:
            return "under review"
        return "details needed"


class TransferStatus(models.TextChoices):
    CREATED = "created"  # committed with its key, gateway not called yet
    IN_FLIGHT = "in_flight"  # the call started; outcome unknown until recorded
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the gateway refused it (e.g. the account cannot receive transfers)


class TransferAttempt(models.Model):
    """The creator's share of one settled charge, sent to the store's connected account.

    One per charge attempt (unique), committed with its idempotency key before the gateway
    call (payments.transfers), like ChargeAttempt: concurrent settlements collapse to one row,
    only the caller that moves it CREATED → IN_FLIGHT calls the gateway, and a row left in
    flight is settled by reading the gateway (by transfer group) or re-sending the same key.
    """

    charge_attempt = models.OneToOneField(
        ChargeAttempt, on_delete=models.PROTECT, related_name="transfer"
    )
    idempotency_key = models.CharField(max_length=80, unique=True)
    destination = models.CharField(max_length=100)  # the connected account
    source_charge_ref = models.CharField(max_length=100, blank=True)  # ch_… of the charge
    transfer_group = models.CharField(max_length=100)
    gross = models.PositiveIntegerField()  # the charge, minor units
    fee = models.PositiveIntegerField()  # the platform's part
    amount = models.PositiveIntegerField()  # gross − fee: what the creator gets
    currency = models.CharField(max_length=3)
    status = models.CharField(
        max_length=12, choices=TransferStatus.choices, default=TransferStatus.CREATED
    )
    gateway_ref = models.CharField(max_length=100, blank=True)
    message = models.CharField(max_length=300, blank=True)
    sends = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"transfer {self.amount} {self.currency} → {self.destination} [{self.status}]"


class ReversalStatus(models.TextChoices):
    CREATED = "created"  # committed with its key; sent once its transfer has succeeded
    IN_FLIGHT = "in_flight"  # the call started; outcome unknown until recorded
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the gateway refused it
    NETTED = "netted"  # nothing to send: taken off the transfer before it was sent, or 0
    CANCELED = "canceled"  # its transfer failed: no money reached the creator to take back


class TransferReversal(models.Model):
    """The creator's share of one refund or lost dispute, taken back from the charge's transfer.

    One per (transfer, cause) (unique), where the cause is the gateway object that took money
    back ("refund:re_…", "dispute:dp_…"); committed with its idempotency key before
    `transfers.create_reversal` (payments.transfers), with TransferAttempt's discipline.
    `covered` is the part of the charge the cause took back (capped at what was left of it);
    `amount` the creator's share of it (pro rata, cumulative rounding) and `fee` the platform
    fee returned on it (covered − amount)."""

    transfer = models.ForeignKey(
        TransferAttempt, on_delete=models.PROTECT, related_name="reversals"
    )
    cause = models.CharField(max_length=120)
    idempotency_key = models.CharField(max_length=160, unique=True)
    covered = models.PositiveIntegerField()
    amount = models.PositiveIntegerField()
    fee = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(
        max_length=12, choices=ReversalStatus.choices, default=ReversalStatus.CREATED
    )
    gateway_ref = models.CharField(max_length=100, blank=True)
    message = models.CharField(max_length=300, blank=True)
    sends = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["transfer", "cause"], name="reversal_one_per_cause")
        ]

    def __str__(self) -> str:
        return f"reversal {self.amount} {self.currency} ({self.cause}) [{self.status}]"


class PayoutKind(models.TextChoices):
    TRANSFER = "transfer"
    REVERSAL = "reversal"


class PayoutEntry(models.Model):
    """The payout ledger: every transfer to the creator and every reversal from them, written
    with the gateway's answer under the row's lock. Append-only, unique per gateway object.
    Kept apart from LedgerEntry (the buyers' money, which analytics reads), so the revenue
    figures stay what they were. `amount` is what moved (kind gives the sign), `fee` the
    platform fee kept on it (transfer) or returned (reversal), `gross` = amount + fee: the
    part of the charge it is about."""

    kind = models.CharField(max_length=10, choices=PayoutKind.choices)
    gateway_ref = models.CharField(max_length=100)
    reference = models.CharField(max_length=80, db_index=True)
    attempt = models.ForeignKey(ChargeAttempt, on_delete=models.PROTECT)
    gross = models.PositiveIntegerField()
    fee = models.PositiveIntegerField()
    amount = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = "payout entry"
        verbose_name_plural = "payout entries"
        constraints = [
            models.UniqueConstraint(fields=["kind", "gateway_ref"], name="payout_unique_object")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.currency} ({self.gateway_ref})"
