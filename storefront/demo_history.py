"""Ninety days of believable history for the demo store, made through the services real
orders go through (checkout, one-click offers, follow-up emails, refunds, experiments, offer
pauses), with the clock set to each moment, so every figure the dashboard shows is one the
store could have produced.

Rates are those of the design card and the strategy article: a checkout bump taken by ~22 %
of buyers (10–30 %), the upsell right after the purchase by ~38 % (30–50 %), its downsell by
~20 % of those who declined, the follow-up email's offer by ~9 % (5–15 %), refunds of a few
percent, several times more on the one add-on priced above half of its cart (which the
creator paused on day 60), and a finished headline test on the upsell (days 15–50).
Some visitors come for the monthly membership (its week's free trial): about a third cancel
before the trial ends, a few members leave each month, a card that fails goes through
dunning, and every morning the renewal job bills what is due, as beat does.

Payments go to an in-process gateway (`payments.memory_gateway.MemoryGateway`), which costs
nothing per call; the local Stripe server rewrites its whole state file on every object it
stores, a cost that grows with every order of the history. So no gateway holds them: each
one's attempt is marked as demo data (`ChargeAttempt.demo`, set here alone), and a refund of a
seeded order from the admin is then recorded without a gateway call (payments.demo).

The background tasks those services queue (transfers to the creator, reversals, receipts,
offers released by the gate) run in this process as they are sent, under the same clock, so
the history leaves nothing for the workers.

Idempotent: every visitor has a deterministic id (`demo-<day>-<n>`); a visitor whose order
exists is skipped, and a day whose first page view is in the event log is done. Days are
counted from the first seeding's start, so a second run (today or any later day) adds
nothing. Deterministic: each day has its own seeded random generator.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test.utils import override_settings
from django.utils import timezone

from analytics.models import Event, EventName, Experiment, ExperimentKind, ExperimentStatus
from analytics.pageviews import page_view_record, page_views_flush
from analytics.rollups import rollups_refresh
from core import orderkeys
from core.money import Money
from offers.experiments import buyer_key, experiment_start, experiment_stop
from offers.models import Offer, OfferKind
from offers.services import offer_pause
from payments import gateway as gateway_module
from payments.demo import demo_attempts_mark
from payments.memory_gateway import CARD_DECLINE, CARD_OK, MemoryGateway
from payments.models import ChargeAttempt
from storefront.models import FollowUpSend, FollowUpStatus, Order, OrderLine, OrderStatus, Product
from storefront.services import followups
from storefront.services.checkout import (
    Attribution,
    CheckoutError,
    bump_shown,
    checkout_pay,
    checkout_start,
)
from storefront.services.refunds import order_line_refund
from storefront.services.upsell import offer_accept, offer_decline, offer_step
from subscriptions.models import BILLED_STATUSES, Subscription, SubscriptionStatus
from subscriptions.services import renewals_run, subscription_cancel_at_period_end

DAYS = 90
VISITOR_PREFIX = "demo-"
BUYER_DOMAIN = "buyers.demo.example"

# What the article and the design card say happens, as probabilities per step.
RATES = {
    "checkout": 0.065,  # a product-page visitor starts the checkout
    "abandon": 0.20,  # ... and leaves before paying
    "declined": 0.03,  # the card is declined at the charge
    "bump": 0.22,  # checkout bump (10–30 %)
    "upsell": 0.38,  # one-click upsell right after the purchase (30–50 %)
    "upsell_b": 0.46,  # the experiment's winning headline
    "downsell": 0.20,  # the downsell, after a declined upsell
    "followup": 0.09,  # the follow-up email's offer (5–15 %)
    "refund_core": 0.03,
    "refund_addon": 0.05,
    "refund_high_price": 0.22,  # the add-on priced above half of its cart
    "masterclass": 0.15,  # a buyer who comes for the masterclass itself
    "club": 0.10,  # a visitor who comes for the monthly membership
    "trial_cancel": 0.35,  # a member cancels before the free trial's first charge
    "club_churn": 0.08,  # a paying member cancels before a renewal (monthly churn)
}
SOURCES = [("instagram", 40), ("newsletter", 15), ("ads", 20), ("", 25)]  # "" = direct
COUNTRIES = [
    (("US", "CA"), 18),
    (("US", "NY"), 14),
    (("US", "TX"), 10),
    (("DE", ""), 14),
    (("GB", ""), 14),
    (("FR", ""), 8),
    (("CA", ""), 8),
    (("AU", ""), 6),
    (("NL", ""), 8),
]
# Over 90 days: the headline test on the upsell ran from day 15 to day 50, and the creator
# paused the high-priced upsell on the masterclass on the morning of day 60 (scaled to a
# shorter history).
EXPERIMENT_SPAN = (1 / 6, 5 / 9)
PAUSE_AT = 2 / 3
EXPERIMENT_NAME = "Upsell headline: 'Add the masterclass' vs 'Edit like a pro'"
HIGH_PRICE_HEADLINE = "Get a portfolio review with your masterclass"


@dataclass
class SeedResult:
    days_seeded: int = 0
    orders: int = 0  # paid orders (a free trial's card-only order is a trial, not counted)
    trials: int = 0
    skipped: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def _pick(rng: random.Random, weighted: list[tuple]) -> object:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


@contextlib.contextmanager
def _clock(start: dt.datetime) -> Iterator[Callable[[dt.datetime], None]]:
    """Every clock the services read (timezone.now, model defaults, signing) set to a moment
    of the history; the function moves it."""
    import time_machine  # a development dependency: only the demo travels in time

    with time_machine.travel(start, tick=False) as traveller:
        yield traveller.move_to


@contextlib.contextmanager
def _tasks_in_process() -> Iterator[None]:
    """Tasks sent while seeding run here, at once, instead of at a worker later: the
    transfers and receipts of a purchase made 80 days ago belong 80 days ago. The outbox row
    is still written and marked sent, as for any task."""
    from config.celery_app import app

    def send_here(name, args=None, kwargs=None, headers=None, **options):
        # The outbox sends inside its own transaction (claiming the row): run after it.
        transaction.on_commit(
            lambda: app.tasks[name].apply(
                args=args, kwargs=kwargs or {}, headers=headers, throw=True
            )
        )

    app.send_task = send_here  # an instance attribute over the bound method
    trace = logging.getLogger("celery.app.trace")  # one line per task: thousands
    level = trace.level
    trace.setLevel(logging.WARNING)
    try:
        yield
    finally:
        del app.send_task
        trace.setLevel(level)


@contextlib.contextmanager
def _memory_gateway() -> Iterator[MemoryGateway]:
    previous = gateway_module._override
    gateway = MemoryGateway(prefix=f"demo{int(time.time())}")
    gateway_module.use_gateway(gateway)
    try:
        yield gateway
    finally:
        gateway_module.use_gateway(previous)


def _anchor(today: dt.date) -> dt.date:
    """Day 0 of the history: kept from the first seeding, so later runs count the same days.
    A day's first visitor (`demo-<day>-0`) looks at a page early that day: the date of any
    such view, less its day, is day 0."""
    first = (
        Event.objects.filter(
            name=EventName.PAGE_VIEWED,
            visitor_id__startswith=VISITOR_PREFIX,
            visitor_id__endswith="-0",
        )
        .order_by("occurred_at")
        .values_list("visitor_id", "occurred_at")
        .first()
    )
    if first is None:
        return today - dt.timedelta(days=DAYS)
    visitor_id, occurred_at = first
    return occurred_at.date() - dt.timedelta(days=int(visitor_id.split("-")[1]))


def _seeded_payments_mark() -> int:
    """Mark the demo visitors' payments made by an in-process gateway (`pi_demo<n>`, its ids)
    that an earlier version of the seeder left unmarked, so their refunds work too."""
    orders = Order.objects.filter(visitor_id__startswith=VISITOR_PREFIX).values_list(
        "pk", flat=True
    )
    refs = ChargeAttempt.objects.filter(
        demo=False,
        reference__in=[orderkeys.order_reference(pk) for pk in orders],
        gateway_ref__regex=r"^pi_demo[0-9]+$",
    ).values_list("gateway_ref", flat=True)
    return demo_attempts_mark(gateway_refs=list(refs))


def _day_done(day: int) -> bool:
    return Event.objects.filter(
        name=EventName.PAGE_VIEWED, visitor_id=f"{VISITOR_PREFIX}{day}-0"
    ).exists()


class _History:
    def __init__(
        self, *, gateway: MemoryGateway, move: Callable, owner, now: dt.datetime, days: int
    ):
        self.experiment_days = tuple(round(days * x) for x in EXPERIMENT_SPAN)
        self.pause_day = round(days * PAUSE_AT)
        self.gateway = gateway
        self.move = move
        self.owner = owner
        self.real_now = now
        self.schema = connection.schema_name
        self.core = Product.objects.get(slug="photo-basics")
        self.masterclass = Product.objects.get(slug="editing-masterclass")
        self.club = Product.objects.filter(slug="photo-club", plan__isnull=False).first()
        self.upsell = Offer.objects.get(kind=OfferKind.UPSELL, trigger_product=self.core)
        self.high_price = self._high_price_offer()
        self.experiment = self._experiment()
        self.orders = 0
        self.trials = 0
        self.emails: list[str] = []
        self.marked: set[str] = set()

    # --- the store's own moves --------------------------------------------------------------
    def _high_price_offer(self) -> Offer:
        offer, _ = Offer.objects.get_or_create(
            kind=OfferKind.UPSELL,
            trigger_product=self.masterclass,
            defaults={
                "product": Product.objects.get(slug="portfolio-review"),
                "price_amount": 1500,  # 62 % of the masterclass: above the article's 50 %
                "currency": "USD",
                "headline": HIGH_PRICE_HEADLINE,
                "benefit": "A recorded critique of ten photos, right after the masterclass.",
                "refund_terms": "Refundable until the review is recorded.",
                "allow_high_price": True,
            },
        )
        return offer

    def _experiment(self) -> Experiment:
        experiment, _ = Experiment.objects.get_or_create(
            offer_id=self.upsell.pk,
            name=EXPERIMENT_NAME,
            defaults={
                "kind": ExperimentKind.CREATIVE,
                "variants": {
                    "a": {"headline": self.upsell.headline},
                    "b": {"headline": "Edit like a pro: the masterclass"},
                },
                "baseline_rate": "0.3500",
                "min_detectable_effect": "0.1000",
            },
        )
        return experiment

    def morning(self, day: int, at: dt.datetime) -> None:
        """What the creator did that day, before the first visitor."""
        if day >= self.experiment_days[0] and self.experiment.status == ExperimentStatus.DRAFT:
            experiment_start(actor=self.owner, experiment=self.experiment, planned_per_arm=150)
        if day >= self.experiment_days[1] and self.experiment.status == ExperimentStatus.RUNNING:
            experiment_stop(actor=self.owner, experiment=self.experiment)
        if day >= self.pause_day and self.high_price.status == Offer.Status.ACTIVE:
            offer_pause(
                actor=self.owner,
                offer=self.high_price,
                reason="Refunded far more often than the other add-ons: above half of the cart.",
            )
        self.experiment.refresh_from_db()
        self.high_price.refresh_from_db()
        self.members(at)

    def members(self, morning: dt.datetime) -> None:
        """The members' own moves (a cancellation two days before a charge: a third of the
        trials, a few paying members a month), then the renewal job as beat runs it: due
        renewals charged, failed ones retried on the dunning schedule."""
        soon = morning + dt.timedelta(days=2)
        leaving = Subscription.objects.filter(
            status__in=BILLED_STATUSES,
            cancel_at_period_end=False,
            next_charge_at__gte=soon,
            next_charge_at__lt=soon + dt.timedelta(days=1),
        ).order_by("pk")
        for sub in leaving:
            rng = random.Random(f"demo-member-{sub.pk}-{sub.next_period}")
            trial = sub.status == SubscriptionStatus.TRIALING
            if rng.random() < RATES["trial_cancel" if trial else "club_churn"]:
                self.move(morning + dt.timedelta(minutes=rng.randint(1, 50)))
                subscription_cancel_at_period_end(subscription_id=sub.pk, by="buyer")
        self.move(morning + dt.timedelta(hours=1))
        renewals_run()
        self.mark_charges()

    def mark_charges(self) -> None:
        """What the in-process gateway charged since the last call is demo data."""
        demo_attempts_mark(gateway_refs=self.gateway.payments.keys() - self.marked)
        self.marked |= self.gateway.payments.keys()

    # --- one visitor ------------------------------------------------------------------------
    def visitor(
        self, rng: random.Random, *, day: int, n: int, at: dt.datetime, made: set[str]
    ) -> None:
        visitor_id = f"{VISITOR_PREFIX}{day}-{n}"
        if visitor_id in made:
            return  # made by an earlier run
        self.move(at)
        source = _pick(rng, SOURCES)
        product = self.masterclass if rng.random() < RATES["masterclass"] else self.core
        if self.club is not None and rng.random() < RATES["club"]:
            product = self.club
        if rng.random() < 0.35:
            page_view_record(visitor_id=visitor_id, page="/", source=source)
        page_view_record(
            visitor_id=visitor_id,
            page=f"/p/{product.slug}/",
            product_id=product.pk,
            source=source,
        )
        if n == 0 or rng.random() >= RATES["checkout"]:
            return  # visitor 0 only looks: their page view marks the day as done
        self.buy(rng, visitor_id=visitor_id, product=product, source=source, at=at)
        self.mark_charges()  # the buyer's checkout, offers and follow-up

    def buy(self, rng, *, visitor_id: str, product: Product, source: str, at: dt.datetime):
        country, region = _pick(rng, COUNTRIES)
        if self.emails and rng.random() < 0.08:  # a returning buyer
            email = rng.choice(self.emails)
        else:
            email = f"buyer-{visitor_id}@{BUYER_DOMAIN}"
            self.emails.append(email)
        bump = bump_shown(product=product, visitor_key=buyer_key(visitor_id=visitor_id)).offer
        take_bump = bump is not None and rng.random() < RATES["bump"]
        self.move(at + dt.timedelta(minutes=rng.randint(1, 6)))
        try:
            started = checkout_start(
                product_slug=product.slug,
                bump_offer_id=bump.pk if take_bump else None,
                email=email,
                country=country,
                region=region,
                save_card=True,
                attribution=Attribution(
                    visitor_id=visitor_id,
                    source=source,
                    medium="social" if source == "instagram" else ("email" if source else ""),
                ),
                expected_total=None,
            )
        except CheckoutError:
            return
        order = started.order
        if rng.random() < RATES["abandon"]:
            return  # left the checkout page
        declined = rng.random() < RATES["declined"]
        self.gateway.setup_confirm(order.setup_ref, card=CARD_DECLINE if declined else CARD_OK)
        self.move(at + dt.timedelta(minutes=rng.randint(7, 12)))
        try:
            checkout_pay(order_token=order.token, setup_ref=order.setup_ref)
        except CheckoutError:
            return
        order.refresh_from_db()
        if order.status != OrderStatus.PAID:
            return
        if product == self.club:
            self.trials += 1
            return  # a member: their trial, renewals and leaving happen in members()
        self.orders += 1
        self.offers(rng, order)
        self.later(rng, order)

    def offers(self, rng: random.Random, order: Order) -> None:
        step = offer_step(order=order, schema=self.schema)
        for _ in range(2):  # the upsell, then (after a decline) the downsell
            if step.stage != "offer":
                return
            decision = step.decision
            rate = RATES["downsell"] if decision.kind == OfferKind.DOWNSELL else RATES["upsell"]
            if decision.offer.headline.startswith("Edit like a pro"):
                rate = RATES["upsell_b"]
            decide = offer_accept if rng.random() < rate else offer_decline
            decide(order_token=order.token, signed=step.token, schema=self.schema)
            if decide is offer_accept:
                return
            step = offer_step(order=order, schema=self.schema)

    def later(self, rng: random.Random, order: Order) -> None:
        """The days after the purchase: follow-up emails (sent when due by the same service
        beat calls) and refunds, as long as that moment has already come."""
        for send in FollowUpSend.objects.filter(order=order).order_by("step"):
            if send.due_at > self.real_now:
                break  # still ahead: the running store's beat sends it
            self.move(send.due_at)
            followups.followup_send(send_id=send.pk, now=send.due_at)
            send.refresh_from_db()
            if send.status == FollowUpStatus.SENT and rng.random() < RATES["followup"]:
                self.move(send.due_at + dt.timedelta(hours=rng.randint(1, 20)))
                token = followups.accept_token(send=send, schema=self.schema)
                with contextlib.suppress(followups.FollowUpRefused):
                    followups.followup_accept(signed=token, schema=self.schema)
                break
        for line in OrderLine.objects.filter(order=order).order_by("pk"):
            if line.kind == "core":
                rate = RATES["refund_core"]
            elif line.offer_id == self.high_price.pk:
                rate = RATES["refund_high_price"]
            else:
                rate = RATES["refund_addon"]
            if rng.random() >= rate:
                continue
            when = order.paid_at + dt.timedelta(days=rng.randint(1, 20), hours=rng.randint(0, 23))
            if when > self.real_now:
                continue
            self.move(when)
            partial = rng.random() < 0.25
            order_line_refund(
                order=order,
                line=line,
                amount=Money(line.total_amount // 2, line.currency) if partial else None,
                reason=rng.choice(
                    ["Bought by mistake", "Not what I expected", "Duplicate purchase"]
                ),
                actor=self.owner,
                requested_by=self.owner.get_username(),
                idempotency_key=f"demo-refund-{line.line_key}",
                channel=" (demo history)",
            )


def demo_history_seed(
    *,
    days: int = DAYS,
    progress: Callable[[str], None] = print,
) -> SeedResult:
    """Seed (or complete) the demo store's history in the current tenant. Idempotent."""
    started = time.monotonic()
    result = SeedResult()
    real_now = timezone.now()
    today = real_now.date()
    anchor = _anchor(today)
    todo = [d for d in range(days) if anchor + dt.timedelta(days=d) < today and not _day_done(d)]
    _seeded_payments_mark()
    if not todo:
        result.skipped = True
        progress("  history: already seeded, nothing to add")
        return result
    with connection.cursor() as cursor:
        # Thousands of small commits: not waiting for each to reach the disk makes seeding
        # several times faster; a crash loses the last moments, which a re-run makes again.
        cursor.execute("SET synchronous_commit = off")
    owner = get_user_model().objects.filter(is_superuser=True).order_by("pk").first()
    first = dt.datetime.combine(anchor + dt.timedelta(days=todo[0]), dt.time(6), dt.UTC)
    with (
        # Its receipts go to an outbox in memory, without the PDFs nobody would open.
        override_settings(
            EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
            INVOICE_PDF_ATTACHED=False,
        ),
        _memory_gateway() as gateway,
        _tasks_in_process(),
        _clock(first) as move,
    ):
        history = _History(gateway=gateway, move=move, owner=owner, now=real_now, days=days)
        seeded = Order.objects.filter(visitor_id__startswith=VISITOR_PREFIX, paid_at__isnull=False)
        trials = Subscription.objects.filter(trial_ends_at__isnull=False).values("order_id")
        history.orders = seeded.exclude(pk__in=trials).count()
        history.trials = seeded.filter(pk__in=trials).count()
        for i, day in enumerate(todo, 1):
            rng = random.Random(f"demo-day-{day}")
            date = anchor + dt.timedelta(days=day)
            morning = dt.datetime.combine(date, dt.time(6), dt.UTC)
            move(morning)
            history.morning(day, morning)
            # A small store growing: ~45 product-page visitors a day at first, ~80 at the end.
            count = int(45 + 35 * day / days + rng.randint(-8, 8))
            moments = sorted(rng.uniform(0, 86000) for _ in range(count))
            made = set(
                Order.objects.filter(visitor_id__startswith=f"{VISITOR_PREFIX}{day}-").values_list(
                    "visitor_id", flat=True
                )
            )
            for n, second in enumerate(moments):
                at = dt.datetime.combine(date, dt.time(0), dt.UTC) + dt.timedelta(seconds=second)
                history.visitor(rng, day=day, n=n, at=at, made=made)
            page_views_flush()  # the day's first page view marks it as done
            result.days_seeded += 1
            if i % 10 == 0 or i == len(todo):
                progress(
                    f"  history: day {i}/{len(todo)}, {history.orders} paid orders "
                    f"({time.monotonic() - started:.1f} s)"
                )
        result.orders, result.trials = history.orders, history.trials
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = DEFAULT")
    rollups_refresh()
    result.seconds = time.monotonic() - started
    return result
