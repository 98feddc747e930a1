"""Reads of payments for the store admin."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Sum
from django.db.models.functions import TruncDate

from payments.models import LedgerEntry, LedgerKind, PayoutEntry, PayoutKind


@dataclass(frozen=True)
class MoneyDay:
    """One day (UTC) of a store's money, minor units of `currency`.

    gross, refunds, disputes: the buyers' money charged, refunded and charged back that day
    (the ledger). fees: the platform fee kept on what was transferred that day, less the fee
    returned with that day's reversals. net: what reached the creator's connected account that
    day, transfers less reversals (the payout ledger). Once every settled charge is
    transferred and every dispute is decided, gross − fees − refunds − disputes = net over
    the period; on a single day they differ by timing (a transfer follows its charge; a
    dispute's share is taken back when it is lost)."""

    day: dt.date
    currency: str
    gross: int = 0
    fees: int = 0
    refunds: int = 0
    disputes: int = 0
    net: int = 0


def money_days(*, since: dt.date, until: dt.date | None = None) -> list[MoneyDay]:
    """Per day from `since` to `until` (inclusive, UTC), newest first; days without money
    are left out."""
    days: dict[tuple[dt.date, str], dict[str, int]] = {}

    def add(day: dt.date, currency: str, field: str, amount: int) -> None:
        row = days.setdefault((day, currency), {})
        row[field] = row.get(field, 0) + amount

    def window(qs):
        qs = qs.annotate(day=TruncDate("created_at", tzinfo=dt.UTC)).filter(day__gte=since)
        return qs.filter(day__lte=until) if until is not None else qs

    ledger = (
        window(LedgerEntry.objects.all())
        .values("day", "currency", "kind")
        .annotate(total=Sum("amount"))
    )
    field_of = {
        LedgerKind.CHARGE: "gross",
        LedgerKind.REFUND: "refunds",
        LedgerKind.CHARGEBACK: "disputes",
    }
    for row in ledger:
        if row["kind"] == LedgerKind.REINSTATED:  # a won dispute gives its chargeback back
            add(row["day"], row["currency"], "disputes", -row["total"])
            continue
        add(row["day"], row["currency"], field_of[row["kind"]], row["total"])
    payouts = (
        window(PayoutEntry.objects.all())
        .values("day", "currency", "kind")
        .annotate(fee=Sum("fee"), amount=Sum("amount"))
    )
    for row in payouts:
        sign = 1 if row["kind"] == PayoutKind.TRANSFER else -1
        add(row["day"], row["currency"], "fees", sign * row["fee"])
        add(row["day"], row["currency"], "net", sign * row["amount"])
    return [
        MoneyDay(day=day, currency=currency, **values)
        for (day, currency), values in sorted(days.items(), reverse=True)
    ]


def ledger_line_totals(*, reference: str) -> dict[str, dict[str, int]]:
    """Per line: charged, refunded and disputed minor units, from the ledger. "chargeback" is
    net of won disputes' reinstatements (what disputes hold now); "reinstated" is also given."""
    rows = (
        LedgerEntry.objects.filter(reference=reference)
        .values("line_key", "kind")
        .annotate(total=Sum("amount"))
    )
    totals: dict[str, dict[str, int]] = {}
    for row in rows:
        totals.setdefault(row["line_key"], {k: 0 for k in LedgerKind.values})[row["kind"]] = row[
            "total"
        ]
    for line in totals.values():
        line[LedgerKind.CHARGEBACK] -= line[LedgerKind.REINSTATED]
    return totals
