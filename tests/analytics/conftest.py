"""A store small enough to check every metric by hand (figures in test_metrics.py)."""

import datetime as dt
from types import SimpleNamespace

import pytest

from analytics.models import Event
from analytics.rollups import rollups_refresh
from core import orderkeys
from offers.models import OfferKind
from payments.models import ChargeAttempt, LedgerEntry
from storefront.models import Customer, Order, OrderLine
from tests.factories import OfferFactory, ProductFactory

UTC = dt.UTC


@pytest.fixture(autouse=True)
def _page_view_memory():
    """The suite clears Redis after each test; the page-view recorder's per-process memory
    (the day's salt, the keys it saw) goes with it."""
    from analytics import pageviews

    pageviews.local_state_clear()
    yield
    pageviews.local_state_clear()


def at(month: int, day: int, hour: int = 12, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, 0, second, tzinfo=UTC)


AS_OF = at(6, 1)


def make_order(customer, *, visitor, source, paid_at, lines, status="paid"):
    """lines: [(kind, product, offer, amount)]; one charge ledger entry per line at paid_at."""
    order = Order.objects.create(
        token=f"tok{Order.objects.count() + 1}{visitor}",
        customer=customer,
        status=status,
        currency="USD",
        country="US",
        visitor_id=visitor,
        utm_source=source,
        paid_at=paid_at,
    )
    made = []
    for kind, product, offer, amount in lines:
        line = OrderLine.objects.create(
            order=order,
            kind=kind,
            product=product,
            offer=offer,
            description=kind,
            net_amount=amount,
            tax_amount=0,
            total_amount=amount,
            currency="USD",
            tax_rate="0",
            tax_inclusive=False,
            tax_country="US",
        )
        OrderLine.objects.filter(pk=line.pk).update(created_at=paid_at or at(1, 1))
        if paid_at:
            ledger(line, "charge", amount, paid_at)
        made.append(line)
    return order, made


def ledger(line, kind, amount, when):
    """A back-dated ledger row, keyed exactly as payments keys it (the line's own key, from
    core/orderkeys.py): the hand-computed store needs months-old dates, which the real
    checkout cannot make. Figures after real checkouts and refunds: test_honest_numbers.py."""
    entry = LedgerEntry.objects.create(
        kind=kind,
        gateway_ref=f"{kind}_{line.pk}_{when:%m%d}",
        reference=line.order.reference,
        line_key=line.line_key,
        amount=amount,
        currency="USD",
    )
    LedgerEntry.objects.filter(pk=entry.pk).update(created_at=when)


def bump_sales(offer, *, count, refunded, days_ago, tag, now=None):
    """`count` paid orders with `offer`'s bump, `days_ago` back, the first `refunded` refunded."""
    from django.utils import timezone

    now = now or timezone.now()
    customer = Customer.objects.create(email=f"{tag}@buyer.example")
    for i in range(count):
        when = now - dt.timedelta(days=days_ago, hours=i)
        _, (_, line) = make_order(
            customer, visitor=f"{tag}{i}", source="ig", paid_at=when,
            lines=[
                ("core", offer.trigger_product, None, 4900),
                ("bump", offer.product, offer, offer.price_amount),
            ],
        )
        if i < refunded:
            ledger(line, "refund", offer.price_amount, when + dt.timedelta(hours=1))


def event(name, when, order=None, **fields):
    if order is not None:
        fields.setdefault("order_id", order.pk)
        fields.setdefault("customer_id", order.customer_id)
        fields.setdefault("visitor_id", order.visitor_id)
        fields.setdefault("source", order.utm_source)
    return Event.objects.create(name=name, occurred_at=when, **fields)


def attempt(order, what, created, seconds, status="succeeded"):
    row = ChargeAttempt.objects.create(
        purpose=orderkeys.order_purpose(order.pk, what),
        idempotency_key=f"idem-{order.pk}-{what}",
        reference=order.reference,
        amount=100,
        currency="USD",
        customer_ref="cus",
        payment_method_ref="pm",
        status=status,
    )
    ChargeAttempt.objects.filter(pk=row.pk).update(
        created_at=created, finished_at=created + dt.timedelta(seconds=seconds)
    )


@pytest.fixture
def hand_store(tenant):
    core = ProductFactory(price_amount=4900)
    bump = OfferFactory(kind=OfferKind.BUMP, trigger_product=core, price_amount=900)
    upsell = OfferFactory(kind=OfferKind.UPSELL, trigger_product=core, price_amount=2700)
    alice, bob, carol, dan, eve = (
        Customer.objects.create(email=f"{n}@buyer.example")
        for n in ("alice", "bob", "carol", "dan", "eve")
    )

    # Alice (ig): core + bump on 10 Jan, bump refunded on 20 Jan; buys again on 15 Feb.
    o1, (o1_core, o1_bump) = make_order(
        alice,
        visitor="v1",
        source="ig",
        paid_at=at(1, 10),
        lines=[("core", core, None, 4900), ("bump", bump.product, bump, 900)],
    )
    ledger(o1_bump, "refund", 900, at(1, 20))
    o4, _ = make_order(
        alice, visitor="v1", source="ig", paid_at=at(2, 15), lines=[("core", core, None, 4900)]
    )
    # Bob (ads): core on 12 Jan + upsell, the upsell charged back on 1 Mar (day 48).
    o2, (_, o2_up) = make_order(
        bob,
        visitor="v2",
        source="ads",
        paid_at=at(1, 12),
        lines=[("core", core, None, 4900), ("upsell", upsell.product, upsell, 2700)],
    )
    ledger(o2_up, "chargeback", 2700, at(3, 1))
    # Carol (ig): core only on 15 Jan.
    o3, _ = make_order(
        carol, visitor="v3", source="ig", paid_at=at(1, 15), lines=[("core", core, None, 4900)]
    )
    # Dan (ig): core only on 3 Feb, fully refunded on 5 Feb.
    o5, (o5_core,) = make_order(
        dan, visitor="v4", source="ig", paid_at=at(2, 3), lines=[("core", core, None, 4900)]
    )
    ledger(o5_core, "refund", 4900, at(2, 5))
    # Eve (ads): a checkout that never paid.
    o6, _ = make_order(
        eve,
        visitor="v6",
        source="ads",
        paid_at=None,
        status="failed",
        lines=[("core", core, None, 4900)],
    )

    # Sessions: v1–v4 and v6 started checkouts; v5 (ig) only looked.
    for order in (o1, o4, o2, o3, o5, o6):
        event("checkout_initiated", order.paid_at or at(2, 20), order, product_id=core.pk)
    event("page_viewed", at(1, 11), visitor_id="v5", source="ig", product_id=core.pk)
    for order in (o1, o4, o2, o3, o5):
        event("checkout_completed", order.paid_at, order, amount=1)
    # Bump offered on o1, o2, o3, o5; taken on o1. Upsell offered on o1, o2, o3; taken on o2.
    for order in (o1, o2, o3, o5):
        event("bump_offered", order.paid_at, order, offer_id=bump.pk)
    event("bump_accepted", o1.paid_at, o1, offer_id=bump.pk)
    for order in (o1, o2, o3):
        event("upsell_offered", order.paid_at, order, offer_id=upsell.pk)
    event("upsell_accepted", o2.paid_at, o2, offer_id=upsell.pk)
    # Reliability: two idempotency conflicts, three upsell failures.
    event("idempotency_conflict", at(1, 12), o2, reason="key_reused")
    event("idempotency_conflict", at(1, 15), o3, reason="key_reused")
    event("upsell_failed", at(1, 10), o1, offer_id=upsell.pk, reason="card_declined")
    event("upsell_failed", at(1, 15), o3, offer_id=upsell.pk, reason="card_declined")
    event("upsell_failed", at(2, 3), o5, offer_id=upsell.pk, reason="authentication_required")
    # Time to charge: o2's upsell in 4 s, o4's downsell in 10 s; a declined upsell and a
    # primary charge are not upsell charges and must not count.
    attempt(o2, "upsell", at(1, 12), 4)
    attempt(o4, "downsell", at(2, 15), 10)
    attempt(o3, "upsell", at(1, 15), 30, status="declined")
    attempt(o1, "primary", at(1, 10), 100)
    # The dashboard folds queued changes into its read models before it reads (as the view
    # does); the figures in test_metrics.py must come out the same either way.
    rollups_refresh()
    return SimpleNamespace(core=core, bump=bump, upsell=upsell, orders=(o1, o2, o3, o4, o5, o6))
