"""The one home of the string formats by which payments and analytics refer to storefront's
orders and lines: references ("order:<id>"), charge purposes ("order:<id>:<what>") and ledger
line keys ("line:<id>", "<kind>:<order id>"), with builders, parsers and the same formats as
SQL expressions for the read models.

It knows only strings and ints, so every layer may import it: payments stores these strings
without knowing what they mean, storefront builds them, analytics joins on them in SQL. A
new kind of line (renewal, coupon) is added here once and every builder, parser and SQL join
follows.
"""

from __future__ import annotations

ORDER = "order"
PRIMARY = "primary"  # the checkout's one payment for core + bump

# Lines charged before their row exists (created when the charge succeeds) cannot be keyed by
# their pk: they are keyed by their kind and order, "<kind>:<order id>", unique because an
# order holds at most one line of each of these kinds (orderline_one_post_purchase, and the
# attempt purpose "order:<id>:cross_sell" is unique). Every other line is "line:<pk>".
KEYED_BY_ORDER = ("upsell", "downsell", "cross_sell")
LINE = "line"

# Ledger references that are orders, as a PostgreSQL regular expression.
ORDER_REFERENCE_RE = f"^{ORDER}:[0-9]{{1,18}}$"


def order_reference(order_id: int) -> str:
    """How payments and analytics refer to an order: "order:42"."""
    return f"{ORDER}:{int(order_id)}"


def order_reference_parse(reference: str) -> int | None:
    """ "order:42" → 42; anything else → None."""
    head, sep, tail = reference.partition(":")
    if head != ORDER or not sep or not tail.isdigit() or len(tail) > 18:
        return None
    return int(tail)


def order_purpose(order_id: int, what: str) -> str:
    """A charge attempt's unique purpose: "order:42:primary", "order:42:upsell", …"""
    if what != PRIMARY and what not in KEYED_BY_ORDER:
        raise ValueError(f"unknown purpose {what!r}")
    return f"{ORDER}:{int(order_id)}:{what}"


def order_purpose_parse(purpose: str) -> tuple[int, str] | None:
    """ "order:42:primary" → (42, "primary"); anything else → None."""
    parts = purpose.split(":")
    if len(parts) != 3 or parts[0] != ORDER or not parts[1].isdigit() or len(parts[1]) > 18:
        return None
    return int(parts[1]), parts[2]


def line_key(*, kind: str, line_id: int | None, order_id: int) -> str:
    """The ledger key of an order line (see KEYED_BY_ORDER)."""
    if kind in KEYED_BY_ORDER:
        return f"{kind}:{int(order_id)}"
    if line_id is None:
        raise ValueError(f"a {kind} line is keyed by its id, and it has none yet")
    return f"{LINE}:{int(line_id)}"


def line_key_parse(key: str) -> tuple[str, int] | None:
    """ "line:7" → ("line", 7) (a line id); "upsell:42" → ("upsell", 42) (an order id)."""
    head, sep, tail = key.partition(":")
    if not sep or not tail.isdigit() or (head != LINE and head not in KEYED_BY_ORDER):
        return None
    return head, int(tail)


# --- the same formats in SQL (column expressions are the caller's, never user input) -------


def order_reference_sql(order_id: str) -> str:
    """SQL for order_reference(<order_id column>)."""
    return f"('{ORDER}:' || {order_id})"


def order_purpose_sql(order_id: str, what: str) -> str:
    """SQL for order_purpose(<order_id column>, what)."""
    order_purpose(0, what)  # the same check of `what`
    return f"('{ORDER}:' || {order_id} || ':{what}')"


def order_id_from_reference_sql(reference: str) -> str:
    """SQL for order_reference_parse(<reference column>), for references matching
    ORDER_REFERENCE_RE."""
    return f"substring({reference} FROM {len(ORDER) + 2})::bigint"


def line_key_sql(*, kind: str, line_id: str, order_id: str) -> str:
    """SQL for line_key(kind=…, line_id=…, order_id=…) over a line row's columns, so a read
    model joins ledger rows to lines exactly as the writers key them."""
    kinds = ", ".join(f"'{k}'" for k in KEYED_BY_ORDER)
    return (
        f"(CASE WHEN {kind} IN ({kinds}) THEN {kind} || ':' || {order_id} "
        f"ELSE '{LINE}:' || {line_id} END)"
    )


# --- subscriptions and payment plans (renewals are charged without an order) ---------------
# A subscription's payments are referenced "sub:<id>"; each try to bill period n is the
# attempt "sub:<id>:<n>:<try>" (try 1 is the renewal, 2… the dunning retries), and its ledger
# line is the period, "sub:<id>:<n>", whichever try paid it.
SUBSCRIPTION = "sub"


def subscription_reference(subscription_id: int) -> str:
    """ "sub:7": how payments and analytics refer to a subscription's renewals."""
    return f"{SUBSCRIPTION}:{int(subscription_id)}"


def subscription_reference_parse(reference: str) -> int | None:
    head, sep, tail = reference.partition(":")
    if head != SUBSCRIPTION or not sep or not tail.isdigit() or len(tail) > 18:
        return None
    return int(tail)


def subscription_reference_sql(subscription_id: str) -> str:
    """SQL for subscription_reference(<subscription id column>)."""
    return f"('{SUBSCRIPTION}:' || {subscription_id})"


def subscription_purpose(subscription_id: int, period: int, attempt_try: int = 1) -> str:
    """The charge attempt for one try at one period: "sub:7:3:1"."""
    if period < 0 or attempt_try < 1:
        raise ValueError("period ≥ 0 and try ≥ 1")
    return f"{SUBSCRIPTION}:{int(subscription_id)}:{int(period)}:{int(attempt_try)}"


def subscription_purpose_parse(purpose: str) -> tuple[int, int, int] | None:
    """ "sub:7:3:1" → (7, 3, 1); anything else → None."""
    parts = purpose.split(":")
    if len(parts) != 4 or parts[0] != SUBSCRIPTION:
        return None
    if not all(p.isdigit() and len(p) <= 18 for p in parts[1:]):
        return None
    return int(parts[1]), int(parts[2]), int(parts[3])


def subscription_line_key(subscription_id: int, period: int) -> str:
    """The ledger line of one period: "sub:7:3"."""
    return f"{SUBSCRIPTION}:{int(subscription_id)}:{int(period)}"


def subscription_line_key_parse(key: str) -> tuple[int, int] | None:
    parts = key.split(":")
    if len(parts) != 3 or parts[0] != SUBSCRIPTION or not all(p.isdigit() for p in parts[1:]):
        return None
    return int(parts[1]), int(parts[2])
