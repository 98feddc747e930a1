"""Repeat revenue: a product's price type (subscription or payment plan), each buyer's
subscription, its stored billing periods, the store's dunning settings and the notices sent.

Refers to storefront's rows by model label ("storefront.Product"): storefront imports this app,
never the other way round. Renewals are payments' ChargeAttempts keyed by
`core.orderkeys.subscription_purpose(id, period, try)`.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import IntegrityError, models, transaction
from django.db.models import Q

from subscriptions import periods


class IntervalUnit(models.TextChoices):
    DAY = periods.DAY, "Day"
    WEEK = periods.WEEK, "Week"
    MONTH = periods.MONTH, "Month"
    YEAR = periods.YEAR, "Year"


class PlanKind(models.TextChoices):
    SUBSCRIPTION = "subscription", "Subscription (renews until cancelled)"
    INSTALMENTS = "instalments", "Payment plan (a fixed number of instalments)"


class Plan(models.Model):
    """How a product is paid when it is not one-time. A product without a Plan is one-time.

    The recurring amount is the product's price (or the offer's, when sold as an offer) at the
    moment of purchase, copied onto the subscription: changing the price later changes it for
    new subscribers only.
    """

    product = models.OneToOneField(
        "storefront.Product", on_delete=models.CASCADE, related_name="plan"
    )
    kind = models.CharField(max_length=12, choices=PlanKind.choices)
    interval_unit = models.CharField(max_length=5, choices=IntervalUnit.choices)
    interval_count = models.PositiveSmallIntegerField(default=1)
    trial_days = models.PositiveSmallIntegerField(default=0)
    # Charged once with the first payment; minor units in the product's currency.
    setup_fee_amount = models.PositiveIntegerField(
        default=0,
        verbose_name="setup fee",
        help_text="Charged once with the first payment, in the product's currency.",
    )
    # Payment plans only: how many instalments in all (the first included).
    instalments = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(interval_count__gte=1, interval_count__lte=366),
                name="plan_interval_count_range",
            ),
            models.CheckConstraint(
                condition=(Q(kind="instalments") & Q(instalments__gte=2))
                | (Q(kind="subscription") & Q(instalments__isnull=True)),
                name="plan_instalments_only_for_plans",
            ),
            models.CheckConstraint(condition=Q(trial_days__lte=730), name="plan_trial_days_range"),
        ]

    def __str__(self) -> str:
        every = f"every {self.interval_count} {self.interval_unit}(s)"
        if self.kind == PlanKind.INSTALMENTS:
            return f"{self.instalments} instalments, {every}"
        return f"subscription, {every}"

    def save(self, *args, **kwargs) -> None:
        super().save(*args, **kwargs)
        self._forget()

    def delete(self, *args, **kwargs):
        result = super().delete(*args, **kwargs)
        self._forget()
        return result

    def _forget(self) -> None:
        from django.core.cache import cache

        from subscriptions.services import plan_cache_key

        # After commit too: a reader between the write and the commit may cache the old plan.
        key = plan_cache_key(self.product_id)

        def forget() -> None:
            try:
                cache.delete(key)
            except Exception:  # an unreachable cache holds nothing we could serve stale
                pass

        forget()
        transaction.on_commit(forget)


class FinalAction(models.TextChoices):
    CANCEL = "cancel", "Cancel the subscription"
    UNPAID = "unpaid", "Mark it unpaid (access stops, the buyer can still pay)"


class DunningSettings(models.Model):
    """One row per store: when failed renewals are retried and what happens after the last."""

    retry_days = ArrayField(
        models.PositiveSmallIntegerField(),
        default=list,
        blank=True,
        help_text="Days after the failed renewal to retry, e.g. 1,3,5,7.",
    )
    final_action = models.CharField(
        max_length=6, choices=FinalAction.choices, default=FinalAction.CANCEL
    )
    expiry_reminder_days = models.PositiveSmallIntegerField(default=30)

    DEFAULT_RETRY_DAYS = (1, 3, 5, 7)

    class Meta:
        verbose_name = "dunning settings"
        verbose_name_plural = "dunning settings"

    def __str__(self) -> str:
        return "Dunning settings"

    @classmethod
    def current(cls) -> DunningSettings:
        """The store's row (made by migration 0002, so in every cloned schema); made again
        with the defaults if it was deleted (a savepoint: two makers race safely)."""
        row = cls.objects.filter(pk=1).first()
        if row is not None:
            return row
        try:
            with transaction.atomic():
                return cls.objects.create(pk=1, retry_days=list(cls.DEFAULT_RETRY_DAYS))
        except IntegrityError:
            return cls.objects.get(pk=1)

    @property
    def schedule(self) -> tuple[int, ...]:
        return tuple(sorted(self.retry_days)) if self.retry_days else self.DEFAULT_RETRY_DAYS


class SubscriptionStatus(models.TextChoices):
    TRIALING = "trialing", "In trial"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due (retrying)"
    PAUSED = "paused", "Paused"
    UNPAID = "unpaid", "Unpaid"
    CANCELED = "canceled", "Cancelled"
    COMPLETED = "completed", "Completed (all instalments paid)"


# The subscription status machine, written once; `subscription_status_move` is the only writer.
SUBSCRIPTION_TRANSITIONS: dict[str, set[str]] = {
    SubscriptionStatus.TRIALING: {
        SubscriptionStatus.ACTIVE,
        SubscriptionStatus.PAST_DUE,
        SubscriptionStatus.CANCELED,
        SubscriptionStatus.PAUSED,
    },
    SubscriptionStatus.ACTIVE: {
        SubscriptionStatus.PAST_DUE,
        SubscriptionStatus.CANCELED,
        SubscriptionStatus.PAUSED,
        SubscriptionStatus.COMPLETED,
    },
    SubscriptionStatus.PAST_DUE: {
        SubscriptionStatus.ACTIVE,
        SubscriptionStatus.COMPLETED,
        SubscriptionStatus.CANCELED,
        SubscriptionStatus.UNPAID,
    },
    SubscriptionStatus.PAUSED: {SubscriptionStatus.ACTIVE, SubscriptionStatus.CANCELED},
    SubscriptionStatus.UNPAID: {SubscriptionStatus.ACTIVE, SubscriptionStatus.CANCELED},
    SubscriptionStatus.COMPLETED: {SubscriptionStatus.CANCELED},  # refunded or lost dispute
    SubscriptionStatus.CANCELED: set(),
}
# Statuses in which the buyer keeps access (past due is the grace period while retrying).
ACCESS_STATUSES = (
    SubscriptionStatus.TRIALING,
    SubscriptionStatus.ACTIVE,
    SubscriptionStatus.PAST_DUE,
    SubscriptionStatus.COMPLETED,
)
# Statuses the renewal job bills.
BILLED_STATUSES = (SubscriptionStatus.TRIALING, SubscriptionStatus.ACTIVE)


class Subscription(models.Model):
    """One buyer's subscription or payment plan. The plan's terms are copied at purchase."""

    customer = models.ForeignKey(
        "storefront.Customer", on_delete=models.PROTECT, related_name="subscriptions"
    )
    product = models.ForeignKey(
        "storefront.Product", on_delete=models.PROTECT, related_name="subscriptions"
    )
    # The order that started it (its first payment), if it was bought through checkout/offer.
    order = models.ForeignKey(
        "storefront.Order",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="subscriptions",
    )
    # The order line whose refund or chargeback ends it ("line:12", "upsell:42").
    line_key = models.CharField(max_length=40, blank=True)
    kind = models.CharField(max_length=12, choices=PlanKind.choices)
    interval_unit = models.CharField(max_length=5, choices=IntervalUnit.choices)
    interval_count = models.PositiveSmallIntegerField()
    instalments = models.PositiveSmallIntegerField(null=True, blank=True)
    # Each renewal's amount, tax included, and the tax part of it; minor units.
    amount = models.PositiveIntegerField()
    tax_amount = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3)
    # Period n runs [anchor + n intervals, anchor + n+1 intervals), UTC. The trial (if any)
    # ends at the anchor; period 0 is the first paid one.
    anchor = models.DateTimeField()
    trial_ends_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=10, choices=SubscriptionStatus.choices, default=SubscriptionStatus.ACTIVE
    )
    # The next period to bill and when (stored when the previous one was paid, never from now).
    next_period = models.PositiveIntegerField(default=0)
    next_charge_at = models.DateTimeField(null=True, blank=True)
    # Access runs to here: the end of the last paid period (or of the trial).
    paid_through = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    # The vaulted card renewals charge, off-session.
    customer_ref = models.CharField(max_length=100)
    payment_method_ref = models.CharField(max_length=100)
    card_exp_month = models.PositiveSmallIntegerField(null=True, blank=True)
    card_exp_year = models.PositiveSmallIntegerField(null=True, blank=True)
    # The subscription this one replaced (an "upgrade to annual" accepted after a monthly).
    replaces = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="replaced_by"
    )
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-pk"]
        indexes = [
            models.Index(
                fields=["next_charge_at"],
                name="subscription_due_idx",
                condition=Q(status__in=["trialing", "active"]),
            )
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z]{3}$"), name="subscription_currency_iso"
            ),
            models.CheckConstraint(
                condition=Q(tax_amount__lte=models.F("amount")), name="subscription_tax_in_amount"
            ),
            # One subscription per paid line, however often its outcome is recorded.
            models.UniqueConstraint(
                fields=["order", "line_key"],
                condition=Q(order__isnull=False),
                name="subscription_one_per_order_line",
            ),
        ]

    def __str__(self) -> str:
        return f"subscription {self.pk} ({self.status})"

    @property
    def reference(self) -> str:
        from core import orderkeys

        return orderkeys.subscription_reference(self.pk)

    def period_bounds(self, n: int):
        return periods.period_bounds(
            anchor=self.anchor, unit=self.interval_unit, count=self.interval_count, n=n
        )


class PeriodStatus(models.TextChoices):
    DUE = "due", "Due (being charged)"
    PAID = "paid", "Paid"
    FAILED = "failed", "Failed (retrying)"
    ACTION = "action", "Waiting for the buyer to authenticate"
    ABANDONED = "abandoned", "Given up (dunning ended)"


class SubscriptionPeriod(models.Model):
    """One billed period, stored when it is first charged: its dates never change."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="periods")
    number = models.PositiveIntegerField()
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    amount = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=PeriodStatus.choices, default=PeriodStatus.DUE)
    # Tries made so far (1 = the renewal itself); each try is its own ChargeAttempt.
    tries = models.PositiveSmallIntegerField(default=1)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    # Paid by the order's checkout (period 0 of a subscription bought without a trial).
    paid_by_order = models.BooleanField(default=False)
    paid_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["subscription_id", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "number"], name="subscriptionperiod_one_per_number"
            ),
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")), name="subscriptionperiod_order"
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_retry_at"],
                name="subscriptionperiod_retry_idx",
                condition=Q(status="failed"),
            )
        ]

    def __str__(self) -> str:
        return f"period {self.number} of {self.subscription_id} ({self.status})"


class SubscriptionEvent(models.Model):
    """The subscription's history for the creator's admin and the buyer's page. Append-only."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="history")
    what = models.CharField(max_length=40)
    detail = models.CharField(max_length=300, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.what} {self.detail}"


class Notice(models.Model):
    """An email to the buyer, unique per (subscription, key): claimed before it is sent, so a
    task run twice sends it once. `key` names the occasion ("retry:3:2", "expiry:2034-12")."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="notices")
    key = models.CharField(max_length=60)
    kind = models.CharField(max_length=30)
    sent_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subscription", "key"], name="notice_once_per_key")
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.subscription_id}"
