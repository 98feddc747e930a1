"""The store admin's home: sales today and this month against the period before, what needs
the creator's attention, and the getting-started checklist until it is done.

Sales are the dashboard's own figure (analytics.selectors.order_value: orders paid in the
period, net of what was refunded or charged back on them), over UTC days like every metric
(docs/metrics.md), so the home, the dashboard, the CSV and the API never disagree."""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import connection
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django_tenants.utils import get_public_schema_name

from analytics import selectors
from analytics.rollups import rollups_refresh
from analytics.selectors import MetricFilter
from core.models import LoopFailure
from core.money import Money
from offers.models import Offer
from payments.models import (
    DISPUTE_OPEN_STATUSES,
    Dispute,
    DisputeStatus,
    Mismatch,
    ReversalStatus,
    TransferAttempt,
    TransferReversal,
    TransferStatus,
)
from storefront.models import Product
from storefront.onboarding import onboarding_checklist
from subscriptions.models import Subscription, SubscriptionStatus

DISPUTE_WINDOW_DAYS = 30


@dataclass(frozen=True)
class Period:
    label: str
    start: dt.datetime
    end: dt.datetime  # exclusive
    compare_label: str
    compare_start: dt.datetime
    compare_end: dt.datetime


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def home_periods(now: dt.datetime | None = None) -> list[Period]:
    """Today against yesterday; this month so far against the same days of last month."""
    today = (now or timezone.now()).astimezone(dt.UTC).date()
    tomorrow = today + dt.timedelta(days=1)
    yesterday = today - dt.timedelta(days=1)
    first = today.replace(day=1)
    prev_first = (first - dt.timedelta(days=1)).replace(day=1)
    prev_days = calendar.monthrange(prev_first.year, prev_first.month)[1]
    prev_end = prev_first + dt.timedelta(days=min(today.day, prev_days))
    return [
        Period(
            "Today",
            _midnight(today),
            _midnight(tomorrow),
            "yesterday",
            _midnight(yesterday),
            _midnight(today),
        ),
        Period(
            "This month",
            _midnight(first),
            _midnight(tomorrow),
            f"{prev_first:%b} 1–{(prev_end - dt.timedelta(days=1)).day}",
            _midnight(prev_first),
            _midnight(prev_end),
        ),
    ]


def store_currency() -> str:
    """The currency most of the store's products are priced in (USD for an empty store)."""
    currencies = list(Product.objects.values_list("currency", flat=True)[:50])
    return max(set(currencies), key=currencies.count) if currencies else "USD"


def change_text(current: int, previous: int) -> str:
    if previous == 0:
        return "no sales to compare with" if current == 0 else "up from nothing"
    pct = (Decimal(current - previous) * 100 / abs(Decimal(previous))).quantize(
        Decimal(1), rounding=ROUND_HALF_UP
    )
    if pct == 0:
        return "about the same"
    return f"{'up' if pct > 0 else 'down'} {abs(pct)}%"


def sales_figures(now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Per period and currency: net sales (gross less refunds and chargebacks on the orders
    paid in the period), gross, paid orders, and the same for the period before."""
    fallback = store_currency()
    out = []
    for p in home_periods(now):
        current = {
            r["currency"]: r for r in selectors.order_value(MetricFilter(start=p.start, end=p.end))
        }
        previous = {
            r["currency"]: r
            for r in selectors.order_value(MetricFilter(start=p.compare_start, end=p.compare_end))
        }
        rows = []
        for currency in sorted(current.keys() | previous.keys()) or [fallback]:
            cur, prev = current.get(currency, {}), previous.get(currency, {})
            net, prev_net = cur.get("net", 0), prev.get("net", 0)
            gross = cur.get("gross", 0)
            rows.append(
                {
                    "currency": currency,
                    "net": net,
                    "gross": gross,
                    "returned": gross - net,
                    "orders": cur.get("orders", 0),
                    "previous_net": prev_net,
                    "net_text": Money(net, currency).format(),
                    "gross_text": Money(gross, currency).format(),
                    "returned_text": Money(gross - net, currency).format(),
                    "previous_text": Money(prev_net, currency).format(),
                    "change": change_text(net, prev_net),
                    "direction": "up" if net > prev_net else "down" if net < prev_net else "",
                }
            )
        out.append({"period": p, "rows": rows})
    return out


@dataclass(frozen=True)
class Attention:
    key: str
    count: int
    text: str
    url: str


# Each check: (key, model whose view permission shows it, count, text, url name, query); the
# text is a format with {s} for the plural, or a function of the count that writes it all.
# Add a line here for anything else that needs the creator.
AttentionCheck = tuple[str, str, Callable[[], int], str | Callable[[int], str], str, str]


def _open_disputes() -> int:
    return Dispute.objects.filter(status__in=DISPUTE_OPEN_STATUSES).count()


def _open_disputes_text(n: int) -> str:
    """ "2 open disputes: the next response is due 3 Dec 2026 (dp_…)"."""
    first = (
        Dispute.objects.filter(status__in=DISPUTE_OPEN_STATUSES, evidence_due_by__isnull=False)
        .order_by("evidence_due_by")
        .first()
    )
    text = f"{n} open dispute{'' if n == 1 else 's'}"
    if first is not None:
        due = first.evidence_due_by.strftime("%-d %b %Y")
        text += f": the next response is due by {due} ({first.gateway_ref})"
    return text


def _lost_disputes() -> int:
    since = timezone.now() - dt.timedelta(days=DISPUTE_WINDOW_DAYS)
    return Dispute.objects.filter(status=DisputeStatus.LOST, closed_at__gte=since).count()


ATTENTION_CHECKS: list[AttentionCheck] = [
    (
        "mismatches",
        "payments.Mismatch",
        lambda: Mismatch.objects.filter(resolved_at__isnull=True).count(),
        "payment{s} that do not match the gateway (reconciliation)",
        "admin:payments_mismatch_changelist",
        "?resolved_at__isempty=1",
    ),
    (
        "paused_offers",
        "offers.Offer",
        lambda: Offer.objects.filter(status=Offer.Status.PAUSED).count(),
        "offer{s} paused (by you or by a guardrail)",
        "admin:offers_offer_changelist",
        "?status__exact=paused",
    ),
    (
        "open_disputes",
        "payments.Dispute",
        _open_disputes,
        _open_disputes_text,
        "admin:payments_dispute_changelist",
        "?status__in=" + ",".join(DISPUTE_OPEN_STATUSES),
    ),
    (
        "disputes",
        "payments.Dispute",
        _lost_disputes,
        f"dispute{{s}} lost in the last {DISPUTE_WINDOW_DAYS} days",
        "admin:payments_dispute_changelist",
        "?status__exact=lost",
    ),
    (
        "dunning",
        "subscriptions.Subscription",
        lambda: Subscription.objects.filter(status=SubscriptionStatus.PAST_DUE).count(),
        "subscription{s} in dunning: a renewal failed and is being retried",
        "admin:subscriptions_subscription_changelist",
        "?status__exact=" + SubscriptionStatus.PAST_DUE,
    ),
    (
        "failed_payouts",
        "payments.TransferAttempt",
        lambda: TransferAttempt.objects.filter(status=TransferStatus.FAILED).count(),
        "payout transfer{s} the gateway refused",
        "admin:payments_transferattempt_changelist",
        "?status__exact=failed",
    ),
    (
        "failed_reversals",
        "payments.TransferReversal",
        lambda: TransferReversal.objects.filter(status=ReversalStatus.FAILED).count(),
        "payout take-back{s} the gateway refused",
        "admin:payments_transferreversal_changelist",
        "?status__exact=failed",
    ),
    (
        "quarantined",
        "core.LoopFailure",
        lambda: LoopFailure.objects.filter(
            schema_name=connection.schema_name, quarantined_at__isnull=False
        ).count(),
        "record{s} our background jobs gave up on",
        "admin:core_loopfailure_changelist",
        "?quarantined_at__isempty=0",
    ),
]


def attention_items(user) -> list[Attention]:
    items = []
    for key, model, count, text, url_name, query in ATTENTION_CHECKS:
        app_label, model_name = model.split(".")
        if not user.has_perm(f"{app_label}.view_{model_name.lower()}"):
            continue
        n = count()
        if not n:
            continue
        try:
            url = reverse(url_name) + query
        except NoReverseMatch:
            url = ""
        said = text(n) if callable(text) else f"{n} " + text.format(s="" if n == 1 else "s")
        items.append(Attention(key, n, said, url))
    return items


def home_context(request) -> dict[str, Any]:
    """The home's panels, on a creator's admin only (the platform's admin has none)."""
    if connection.schema_name == get_public_schema_name() or not request.user.is_staff:
        return {}
    rollups_refresh()  # current to the request, as the dashboard is
    checklist = onboarding_checklist(creator=request.tenant)
    return {
        "store_home": True,
        "sales": sales_figures(),
        "attention": attention_items(request.user),
        "checklist": checklist,
        "checklist_done": all(item.done for item in checklist),
        "checklist_left": sum(not item.done for item in checklist),
    }
