"""Billing periods: calendar arithmetic in UTC from the stored anchor, and the string keys."""

import datetime as dt

import pytest

from core import orderkeys
from subscriptions.periods import add_months, period_bounds, period_start

UTC = dt.UTC


def d(y, m, day, h=9):
    return dt.datetime(y, m, day, h, 30, tzinfo=UTC)


def test_anchored_on_31_january_it_bills_on_short_months_last_day_and_returns_to_the_31st():
    anchor = d(2027, 1, 31)
    starts = [period_start(anchor=anchor, unit="month", count=1, n=n) for n in range(13)]
    assert [s.date() for s in starts] == [
        dt.date(2027, 1, 31),
        dt.date(2027, 2, 28),
        dt.date(2027, 3, 31),
        dt.date(2027, 4, 30),
        dt.date(2027, 5, 31),
        dt.date(2027, 6, 30),
        dt.date(2027, 7, 31),
        dt.date(2027, 8, 31),
        dt.date(2027, 9, 30),
        dt.date(2027, 10, 31),
        dt.date(2027, 11, 30),
        dt.date(2027, 12, 31),
        dt.date(2028, 1, 31),
    ]
    assert all(s.time() == dt.time(9, 30) and s.tzinfo == UTC for s in starts)


def test_a_leap_year_february_bills_on_the_29th():
    assert period_start(anchor=d(2028, 1, 31), unit="month", count=1, n=1).date() == dt.date(
        2028, 2, 29
    )
    # Annual from 29 February: 28 February in common years, 29 again in the next leap year.
    anchor = d(2028, 2, 29)
    assert period_start(anchor=anchor, unit="year", count=1, n=1).date() == dt.date(2029, 2, 28)
    assert period_start(anchor=anchor, unit="year", count=1, n=4).date() == dt.date(2032, 2, 29)


def test_periods_are_counted_from_the_anchor_not_from_the_previous_period():
    anchor = d(2027, 1, 31)
    # From the previous date, 28 February + 1 month would be 28 March.
    assert add_months(period_start(anchor=anchor, unit="month", count=1, n=1), 1).day == 28
    assert period_start(anchor=anchor, unit="month", count=1, n=2).day == 31


def test_days_weeks_and_multi_month_intervals():
    anchor = d(2027, 3, 27)
    assert period_bounds(anchor=anchor, unit="day", count=10, n=2) == (
        d(2027, 4, 16),
        d(2027, 4, 26),
    )
    assert period_start(anchor=anchor, unit="week", count=2, n=1) == d(2027, 4, 10)
    assert period_start(anchor=d(2027, 8, 31), unit="month", count=3, n=2) == d(2028, 2, 29)


def test_utc_is_kept_whatever_zone_the_anchor_was_given_in():
    tz = dt.timezone(dt.timedelta(hours=-5))
    anchor = dt.datetime(2027, 1, 31, 22, 0, tzinfo=tz)  # 1 February 03:00 UTC
    assert period_start(anchor=anchor, unit="month", count=1, n=1) == dt.datetime(
        2027, 3, 1, 3, 0, tzinfo=UTC
    )


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        period_start(anchor=dt.datetime(2027, 1, 1), unit="month", count=1, n=1)
    with pytest.raises(ValueError):
        period_start(anchor=d(2027, 1, 1), unit="fortnight", count=1, n=1)
    with pytest.raises(ValueError):
        period_start(anchor=d(2027, 1, 1), unit="month", count=0, n=1)


def test_renewal_keys_round_trip_and_reject_other_strings():
    assert orderkeys.subscription_purpose(7, 3, 2) == "sub:7:3:2"
    assert orderkeys.subscription_purpose_parse("sub:7:3:2") == (7, 3, 2)
    assert orderkeys.subscription_reference(7) == "sub:7"
    assert orderkeys.subscription_reference_parse("sub:7") == 7
    assert orderkeys.subscription_line_key(7, 3) == "sub:7:3"
    assert orderkeys.subscription_line_key_parse("sub:7:3") == (7, 3)
    for bad in ("order:7:primary", "sub:7:3", "sub:x:1:1", "sub:7:3:1:9", ""):
        assert orderkeys.subscription_purpose_parse(bad) is None
    assert orderkeys.order_purpose_parse("sub:7:3:1") is None
    assert orderkeys.order_reference_parse("sub:7") is None
    assert orderkeys.line_key_parse("sub:7:3") is None
