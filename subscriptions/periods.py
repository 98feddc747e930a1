"""Billing periods by calendar arithmetic in UTC, always counted from the anchor.

Period n starts at anchor + n intervals. Months are added to the anchor's own day and clamped to
the month's last day, so an anchor on 31 January bills on 28 (or 29) February and on 31 March
again: computing from the previous period's date would drift to the 28th for ever.
"""

from __future__ import annotations

import calendar
import datetime as dt

DAY, WEEK, MONTH, YEAR = "day", "week", "month", "year"
UNITS = (DAY, WEEK, MONTH, YEAR)


def add_months(when: dt.datetime, months: int) -> dt.datetime:
    """`when` moved by whole calendar months, the day clamped to the target month's end."""
    index = when.year * 12 + (when.month - 1) + months
    year, month = divmod(index, 12)
    day = min(when.day, calendar.monthrange(year, month + 1)[1])
    return when.replace(year=year, month=month + 1, day=day)


def period_start(*, anchor: dt.datetime, unit: str, count: int, n: int) -> dt.datetime:
    """Start of period `n` (0 = the anchor) for an interval of `count` `unit`s, in UTC."""
    if anchor.tzinfo is None:
        raise ValueError("the anchor must be an aware datetime")
    if count < 1 or n < 0:
        raise ValueError("count must be ≥ 1 and n ≥ 0")
    anchor = anchor.astimezone(dt.UTC)
    if unit == DAY:
        return anchor + dt.timedelta(days=count * n)
    if unit == WEEK:
        return anchor + dt.timedelta(weeks=count * n)
    if unit == MONTH:
        return add_months(anchor, count * n)
    if unit == YEAR:
        return add_months(anchor, 12 * count * n)
    raise ValueError(f"unknown interval unit {unit!r}")


def period_bounds(
    *, anchor: dt.datetime, unit: str, count: int, n: int
) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of period `n`."""
    return (
        period_start(anchor=anchor, unit=unit, count=count, n=n),
        period_start(anchor=anchor, unit=unit, count=count, n=n + 1),
    )
