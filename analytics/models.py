"""The append-only funnel event log (one per tenant schema)."""

from decimal import Decimal

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone


class EventName(models.TextChoices):
    PAGE_VIEWED = "page_viewed"
    CHECKOUT_INITIATED = "checkout_initiated"
    CHECKOUT_COMPLETED = "checkout_completed"
    CHECKOUT_FAILED = "checkout_failed"
    BUMP_OFFERED = "bump_offered"
    BUMP_ACCEPTED = "bump_accepted"
    UPSELL_OFFERED = "upsell_offered"
    UPSELL_ACCEPTED = "upsell_accepted"
    UPSELL_DECLINED = "upsell_declined"
    UPSELL_FAILED = "upsell_failed"
    UPSELL_CHARGED = "upsell_charged"
    DOWNSELL_OFFERED = "downsell_offered"
    EMAIL_SENT = "email_sent"
    REFUND_ISSUED = "refund_issued"
    CHARGEBACK_OPENED = "chargeback_opened"
    # A dispute's outcome, once per dispute (payments.disputes claims it on the status move).
    DISPUTE_WON = "dispute_won"
    DISPUTE_LOST = "dispute_lost"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    OFFER_PAUSED = "offer_paused"


class Event(models.Model):
    """One thing that happened in the funnel. Rows are never updated or deleted (a trigger
    refuses it); other apps' rows are referred to by id so analytics imports no other app."""

    name = models.CharField(max_length=40, choices=EventName.choices)
    occurred_at = models.DateTimeField(default=timezone.now)
    visitor_id = models.CharField(max_length=64, blank=True)
    customer_id = models.BigIntegerField(null=True, blank=True)
    order_id = models.BigIntegerField(null=True, blank=True)
    offer_id = models.BigIntegerField(null=True, blank=True)
    product_id = models.BigIntegerField(null=True, blank=True)
    variant = models.CharField(max_length=40, blank=True)
    source = models.CharField(max_length=100, blank=True)  # utm_source, or "email" etc.
    medium = models.CharField(max_length=100, blank=True)
    campaign = models.CharField(max_length=100, blank=True)
    amount = models.BigIntegerField(null=True, blank=True)  # minor units, when money moved
    currency = models.CharField(max_length=3, blank=True)
    reason = models.CharField(max_length=100, blank=True)
    properties = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["name", "occurred_at"], name="event_name_time_idx"),
            models.Index(fields=["order_id"], name="event_order_idx"),
            models.Index(fields=["offer_id", "name"], name="event_offer_idx"),
            # Cohort and repeat-purchase queries walk one customer's events in time order;
            # session counts group by visitor.
            models.Index(fields=["customer_id", "occurred_at"], name="event_customer_time_idx"),
            models.Index(fields=["visitor_id", "name"], name="event_visitor_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} @ {self.occurred_at:%Y-%m-%d %H:%M}"


class ExperimentKind(models.TextChoices):
    # One thing at a time: a test changes the creative *or* the structure, never both, so a
    # result can be attributed (the strategy article's "separate creative from structural").
    CREATIVE = "creative", "Creative (headline, framing, benefit, testimonial)"
    STRUCTURAL = "structural", "Structural (placement, price)"


# What each kind may vary, and nothing else.
EXPERIMENT_FIELDS: dict[str, frozenset[str]] = {
    ExperimentKind.CREATIVE: frozenset({"headline", "benefit", "testimonial", "framing"}),
    ExperimentKind.STRUCTURAL: frozenset({"placement", "price_amount"}),
}
CONTROL_ARM = "control"  # the persistent no-offer arm


class ExperimentStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped"


class Experiment(models.Model):
    """A test on one offer. `variants` maps arm name → the fields that differ in that arm,
    e.g. {"a": {"headline": "Complete your kit"}, "b": {"headline": "Add the workbook"}}.
    The offer is referred to by id (analytics imports no other app)."""

    offer_id = models.BigIntegerField(db_index=True)
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=12, choices=ExperimentKind.choices)
    variants = models.JSONField(default=dict)
    # A persistent arm that never sees the offer: the only honest measure of incremental AOV.
    control_no_offer = models.BooleanField(default=False)
    status = models.CharField(
        max_length=8, choices=ExperimentStatus.choices, default=ExperimentStatus.DRAFT
    )
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    # Planning inputs for the sample size: rates as proportions (0.10 = 10 %).
    baseline_rate = models.DecimalField(max_digits=5, decimal_places=4, default=Decimal("0.1000"))
    min_detectable_effect = models.DecimalField(
        max_digits=5,
        decimal_places=4,
        default=Decimal("0.0200"),
        help_text="Absolute difference in take rate worth detecting, e.g. 0.02 = 2 points.",
    )
    alpha = models.DecimalField(max_digits=4, decimal_places=3, default=Decimal("0.050"))
    power = models.DecimalField(max_digits=4, decimal_places=3, default=Decimal("0.800"))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=["creative", "structural"]), name="experiment_kind"
            ),
            models.CheckConstraint(
                condition=models.Q(alpha__gt=0, alpha__lt=Decimal("0.5"), power__gt=0, power__lt=1),
                name="experiment_alpha_power_range",
            ),
            # One running test per offer: two overlapping tests would confound each other.
            models.UniqueConstraint(
                fields=["offer_id"],
                condition=models.Q(status="running"),
                name="experiment_one_running_per_offer",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        # Validation is cheap and the rule is the point of the model: refuse to store a
        # mixed creative + structural test even when saved outside a form.
        self.clean()
        super().save(*args, **kwargs)

    def clean(self) -> None:
        problems = experiment_variants_problems(
            kind=self.kind, variants=self.variants, control_no_offer=self.control_no_offer
        )
        if problems:
            raise ValidationError({"variants": problems})

    @property
    def arms(self) -> list[str]:
        names = sorted(self.variants)
        return ([CONTROL_ARM] if self.control_no_offer else []) + names


def experiment_variants_problems(
    *, kind: str, variants: object, control_no_offer: bool
) -> list[str]:
    allowed = EXPERIMENT_FIELDS.get(kind)
    if allowed is None:
        return [f"unknown kind {kind!r}"]
    if not isinstance(variants, dict):
        return ["variants must map arm names to the fields that differ"]
    problems = []
    if CONTROL_ARM in variants:
        problems.append(f"{CONTROL_ARM!r} is reserved for the no-offer arm")
    if len(variants) + (1 if control_no_offer else 0) < 2:
        problems.append("an experiment needs at least two arms")
    for arm, fields in variants.items():
        if not isinstance(fields, dict):
            problems.append(f"arm {arm!r}: give the fields that differ as an object")
            continue
        if not (0 < len(str(arm)) <= 40):
            problems.append(f"arm name {arm!r} must be 1–40 characters")
        stray = set(fields) - allowed
        if stray:
            other = next(k for k in EXPERIMENT_FIELDS if k != kind)
            mixes = stray & EXPERIMENT_FIELDS[other]
            if mixes:
                problems.append(
                    f"arm {arm!r} changes {', '.join(sorted(mixes))}: a {kind} test may not "
                    f"change {other} fields; test one thing at a time"
                )
            if stray - mixes:
                problems.append(f"arm {arm!r}: unknown fields {', '.join(sorted(stray - mixes))}")
    return problems


class Assignment(models.Model):
    """The arm a visitor (or customer) is in. Unique per experiment and visitor, so the first
    assignment sticks across visits and concurrent requests collapse to one row."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="assignments")
    visitor_key = models.CharField(max_length=64)
    variant = models.CharField(max_length=40)
    assigned_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "visitor_key"], name="assignment_one_per_visitor"
            )
        ]

    def __str__(self) -> str:
        return f"{self.visitor_key} → {self.variant}"


# --- Read models the dashboard scans instead of the raw tables (analytics/rollups.py) -------
#
# Database triggers (migration 0004) put the id of every new event, and of every order whose
# paid time, lines or ledger changed, on RollupQueue in the writer's own transaction: one
# INSERT with no unique key, so writers never wait on each other. `rollups_refresh` drains the
# queue under a per-schema lock and recomputes what changed. The direct queries in
# selectors.py (`*_direct`) stay as the oracle the tests compare these against.


class RollupQueue(models.Model):
    class Kind(models.TextChoices):
        EVENT = "e"
        ORDER = "o"
        CUSTOMER = "c"  # a buyer whose subscriptions' ledger changed (their LTV)

    kind = models.CharField(max_length=1, choices=Kind.choices)
    ref = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.kind}:{self.ref}"


class EventDay(models.Model):
    """Events per UTC day, name, source and offer (0 = no offer)."""

    day = models.DateField()
    name = models.CharField(max_length=40)
    source = models.CharField(max_length=100)
    offer_id = models.BigIntegerField()
    events = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "name", "source", "offer_id"], name="eventday_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.name} {self.source} {self.offer_id}: {self.events}"


class VisitorFirst(models.Model):
    """When a visitor first reached a step (a funnel step, or "session"), over all sources
    (scope "*") and within their source (scope "=<source>"). Exact distinct visitors."""

    step = models.CharField(max_length=40)
    scope = models.CharField(max_length=101)
    visitor_id = models.CharField(max_length=64)
    first_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["step", "scope", "visitor_id"], name="visitorfirst_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.step} {self.scope} {self.visitor_id} @ {self.first_at}"


class VisitorFirstDay(models.Model):
    """How many visitors first reached a step on each UTC day, per scope."""

    day = models.DateField()
    step = models.CharField(max_length=40)
    scope = models.CharField(max_length=101)
    visitors = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "step", "scope"], name="visitorfirstday_unique")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.step} {self.scope}: {self.visitors}"


class VisitorDay(models.Model):
    """A visitor active (a page view or checkout start) on a UTC day, over all sources (scope
    "*") and within their source (scope "=<source>"): one row is one session."""

    day = models.DateField()
    scope = models.CharField(max_length=101)
    visitor_id = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "scope", "visitor_id"], name="visitorday_unique")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.scope} {self.visitor_id}"


class OrderSummary(models.Model):
    """One paid order's money from the ledger (minor units) and what it is filtered by."""

    order_id = models.BigIntegerField(primary_key=True)
    customer_id = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    source = models.CharField(max_length=100)
    core_product_id = models.BigIntegerField(null=True)
    offer_ids = ArrayField(models.BigIntegerField(), default=list)
    paid_at = models.DateTimeField()
    entries = models.IntegerField()  # ledger rows; an order with none is not counted
    charged = models.BigIntegerField()
    refunded = models.BigIntegerField()
    charged_back = models.BigIntegerField()
    # Offers shown on the order, accepted (ticked or clicked) and taken (a charged line).
    offered_ids = ArrayField(models.BigIntegerField(), default=list)
    accepted_ids = ArrayField(models.BigIntegerField(), default=list)
    taken_ids = ArrayField(models.BigIntegerField(), default=list)

    class Meta:
        indexes = [models.Index(fields=["paid_at"], name="ordersummary_paid_idx")]

    def __str__(self) -> str:
        return f"order {self.order_id}: {self.charged} charged"


class OfferLineSummary(models.Model):
    """One line of a paid order (every kind, core included) with its charges, refunds and
    chargebacks from the ledger, matched by line key (refund and chargeback rates)."""

    line_id = models.BigIntegerField(primary_key=True)
    order_id = models.BigIntegerField(db_index=True)
    kind = models.CharField(max_length=12, default="core")
    offer_id = models.BigIntegerField(null=True)
    created_at = models.DateTimeField()
    paid_at = models.DateTimeField(null=True)  # the order's
    source = models.CharField(max_length=100)
    core_product_id = models.BigIntegerField(null=True)
    charged = models.BigIntegerField()
    refunded = models.BigIntegerField()
    charged_back = models.BigIntegerField()

    def __str__(self) -> str:
        return f"line {self.line_id}: {self.charged} charged"


class CustomerSummary(models.Model):
    """A buyer's first paid order and net value 30/60/90 days after it (cohort LTV)."""

    customer_id = models.BigIntegerField(primary_key=True)
    first_order_id = models.BigIntegerField()
    first_at = models.DateTimeField()
    source = models.CharField(max_length=100)  # of the first order
    core_product_id = models.BigIntegerField(null=True)
    first_offer_ids = ArrayField(models.BigIntegerField(), default=list)
    first_took = models.BooleanField()  # the first order has a non-core line
    net30 = models.BigIntegerField()
    net60 = models.BigIntegerField()
    net90 = models.BigIntegerField()
    second_paid_at = models.DateTimeField(null=True)

    class Meta:
        indexes = [models.Index(fields=["first_at"], name="customersummary_first_idx")]

    def __str__(self) -> str:
        return f"customer {self.customer_id}: first {self.first_at:%Y-%m-%d}"
