"""Orders, ledger entries, events and attempts written straight to the database (no gateway).

One set of builders for every test that needs paid orders with a known history: analytics'
metrics, the offers' guardrails and experiments, the beat scenarios.
"""

import datetime as dt

from analytics.models import Event
from core import orderkeys
from payments.models import ChargeAttempt, LedgerEntry
from storefront.models import Customer, Order, OrderLine

UTC = dt.UTC


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


def ledger(line, kind, amount, when, *, ref=None):
    """A back-dated ledger row, keyed exactly as payments keys it (the line's own key, from
    core/orderkeys.py): the hand-computed store needs months-old dates, which the real
    checkout cannot make. Figures after real checkouts and refunds: test_honest_numbers.py.
    `ref`: the gateway ref (a dispute's chargeback and its reinstatement share one)."""
    entry = LedgerEntry.objects.create(
        kind=kind,
        gateway_ref=ref or f"{kind}_{line.pk}_{when:%m%d}",
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
            customer,
            visitor=f"{tag}{i}",
            source="ig",
            paid_at=when,
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
