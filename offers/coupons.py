"""Coupons: finding a code, the discount per line, and redeeming it with database-held limits.

A coupon takes money off the checkout's lines (the core product and its bump), never off the
one-click offers after it. Redeeming happens inside the transaction that creates the order
(storefront.services.checkout): one conditional UPDATE moves the coupon's total, one
INSERT … ON CONFLICT DO UPDATE … WHERE moves the buyer's count, so under any concurrency the
database refuses the use past either limit and the whole order is rolled back with it. A
failed order, a pending one the buyer replaced with a new checkout, or one left unpaid past
the hold time (storefront.services.coupon_holds), gives its use back (`coupon_release`); a
Pay on a checkout whose use was given back takes it again within the limits or is refused
before any charge (`coupon_reclaim`); a payment that succeeds late takes it again
(`coupon_rehold`), even past the limit, because the money has then been charged at the
discounted price.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.contrib.postgres.aggregates import ArrayAgg
from django.contrib.postgres.fields import ArrayField
from django.db import connection, transaction
from django.db.models import (
    F,
    IntegerField,
    JSONField,
    OuterRef,
    Q,
    Subquery,
    TextField,
    Value,
)
from django.db.models.functions import Cast, Coalesce, JSONObject
from django.utils import timezone

from core.money import Money
from offers.models import Coupon, CouponCustomerUse, CouponKind, CouponRedemption

CODE_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


class CouponRefused(ValueError):
    """A code the buyer cannot use, with a reason code and a sentence for them."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class CouponLine:
    """A line the coupon may take money off: its product and its price as the store sets it
    (tax included where the store's prices include tax)."""

    product_id: int
    description: str
    price: Money


def code_normalize(raw: str | None) -> str:
    """The code as typed, trimmed; '' for none. Refuses what cannot be a code."""
    code = (raw or "").strip()
    if code and not CODE_RE.fullmatch(code):
        raise CouponRefused(
            "invalid", "A coupon code has only letters, digits, - and _ (at most 40)."
        )
    return code


_FIELDS = (
    "id",
    "code",
    "kind",
    "percent_off",
    "amount_off",
    "currency",
    "applies_to_all",
    "starts_at",
    "ends_at",
    "max_redemptions",
    "max_per_customer",
    "times_redeemed",
    "active",
)


def coupon_subquery(code: str) -> Subquery:
    """The coupon for `code` (any case) as one JSON value, products included, for a caller that
    reads it in the same statement as something else it needs (the checkout page reads it with
    its product: one query for both, storefront.selectors.product_get_active)."""
    products = (
        Coupon.products.through.objects.filter(coupon_id=OuterRef("pk"))
        .values("coupon_id")
        .annotate(ids=ArrayAgg("product_id"))
        .values("ids")
    )
    data = JSONObject(
        # The percentage as text: a JSON number would come back through a float.
        **{name: Cast(name, TextField()) if name == "percent_off" else F(name) for name in _FIELDS},
        product_ids=Coalesce(Subquery(products), Value([], ArrayField(IntegerField()))),
    )
    return Subquery(
        Coupon.objects.filter(code__iexact=code).annotate(data=data).values("data")[:1],
        output_field=JSONField(),
    )


def coupon_from_data(data: dict | None) -> Coupon | None:
    """The Coupon that coupon_subquery's JSON describes (None stays None)."""
    if not data:
        return None
    values = {}
    for name in _FIELDS:
        raw = data.get(name)
        field = Coupon._meta.get_field(name)
        values[field.attname] = None if raw is None else field.to_python(raw)
    coupon = Coupon(**values)
    coupon._state.adding = False
    coupon.product_ids = [int(pk) for pk in data.get("product_ids") or []]
    return coupon


_UNREAD = object()


def coupon_find(
    *, code: str, now: dt.datetime | None = None, redeeming: bool = False, loaded=_UNREAD
) -> Coupon:
    """The store's live coupon for `code` (any case), with its product ids in one query (or
    none: `loaded` is what coupon_subquery read along with something else, None for no row).
    Raises CouponRefused for an unknown, paused, not yet started, expired or used-up code.

    `redeeming`: the caller redeems it next, and the database's answer there is the one that
    counts (a use this buyer's own abandoned checkout holds is given back first), so a count
    read here is not held against them."""
    code = code_normalize(code)
    if not code:
        raise CouponRefused("unknown", "Enter a coupon code.")
    now = now or timezone.now()
    if loaded is _UNREAD:
        coupon = (
            Coupon.objects.filter(code__iexact=code)
            .annotate(product_ids=ArrayAgg("products__id", default=[]))
            .first()
        )
        if coupon is not None:
            coupon.product_ids = [pk for pk in coupon.product_ids if pk is not None]
    else:
        coupon = loaded
    # Another store's code is not in this store's schema: it is unknown here, as it should be.
    if coupon is None or not coupon.active:
        raise CouponRefused("unknown", f"The coupon code {code} is not valid in this store.")
    if coupon.starts_at and coupon.starts_at > now:
        raise CouponRefused(
            "not_started",
            f"The coupon {coupon.code} can be used from {coupon.starts_at:%-d %B %Y, %H:%M} UTC.",
        )
    if coupon.ends_at and coupon.ends_at <= now:
        raise CouponRefused("expired", f"The coupon {coupon.code} has expired.")
    if (
        not redeeming
        and coupon.max_redemptions is not None
        and coupon.times_redeemed >= coupon.max_redemptions
    ):
        raise CouponRefused("exhausted", f"The coupon {coupon.code} has been used up.")
    return coupon


def _allocate(amount: int, weights: list[int]) -> list[int]:
    """`amount` split in proportion to `weights`, largest remainder, summing exactly."""
    whole = sum(weights)
    shares = [amount * w // whole for w in weights]
    rest = amount - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: (-(amount * weights[i] % whole), i))
    for i in order[:rest]:
        shares[i] += 1
    return shares


def coupon_discounts(*, coupon: Coupon, lines: list[CouponLine]) -> list[int]:
    """The discount in minor units for each of `lines` (0 where it does not apply).

    Raises CouponRefused when it applies to none of them, is in another currency, or takes
    more than their price (or the whole order: a checkout needs something to pay)."""
    product_ids = getattr(coupon, "product_ids", None)
    if product_ids is None:
        product_ids = list(coupon.products.values_list("pk", flat=True))
    eligible = [coupon.applies_to_all or line.product_id in product_ids for line in lines]
    if not any(eligible):
        names = ", ".join(line.description for line in lines)
        raise CouponRefused(
            "not_applicable", f"The coupon {coupon.code} does not apply to {names}."
        )
    currency = lines[0].price.currency
    if coupon.kind == CouponKind.PERCENT:
        ratio = Decimal(coupon.percent_off) / Decimal(100)
        discounts = [
            line.price.scaled(ratio, ROUND_HALF_UP).amount if ok else 0
            for line, ok in zip(lines, eligible, strict=True)
        ]
    else:
        if coupon.currency != currency:
            raise CouponRefused(
                "currency",
                f"The coupon {coupon.code} is for prices in {coupon.currency}, "
                f"and this order is in {currency}.",
            )
        base = sum(line.price.amount for line, ok in zip(lines, eligible, strict=True) if ok)
        if coupon.amount_off > base:
            raise CouponRefused(
                "too_large",
                f"The coupon {coupon.code} takes off {Money(coupon.amount_off, currency)}, "
                f"more than the price it applies to ({Money(base, currency)}).",
            )
        weights = [line.price.amount if ok else 0 for line, ok in zip(lines, eligible, strict=True)]
        discounts = _allocate(coupon.amount_off, weights)
    if sum(discounts) >= sum(line.price.amount for line in lines):
        raise CouponRefused(
            "too_large",
            f"The coupon {coupon.code} would take off the whole price; this checkout needs "
            "an amount to pay. Ask the store for access instead.",
        )
    return discounts


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def coupon_redeem(
    *,
    coupon: Coupon,
    order_id: int,
    customer_id: int,
    amount: Money,
    now: dt.datetime | None = None,
) -> CouponRedemption:
    """Take one use of `coupon` for this order and buyer. Runs inside the order's
    transaction: a refusal raises CouponRefused and the caller's rollback writes nothing."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("coupon_redeem must run inside the order's transaction")
    _use_take(coupon=coupon, customer_id=customer_id, now=now or timezone.now())
    return CouponRedemption.objects.create(
        coupon_id=coupon.pk,
        order_id=order_id,
        customer_id=customer_id,
        code=coupon.code,
        amount=amount.amount,
        currency=amount.currency,
    )


def _use_take(*, coupon: Coupon, customer_id: int, now: dt.datetime) -> None:
    """One use of the coupon's total and of the buyer's count, each by a conditional
    statement the database decides; CouponRefused (and the caller's rollback) past a limit."""
    taken = (
        Coupon.objects.filter(pk=coupon.pk, active=True)
        .filter(Q(starts_at=None) | Q(starts_at__lte=now))
        .filter(Q(ends_at=None) | Q(ends_at__gt=now))
        .filter(Q(max_redemptions=None) | Q(times_redeemed__lt=F("max_redemptions")))
        .update(times_redeemed=F("times_redeemed") + 1)
    )
    if not taken:
        # Re-read for the reason (expired or paused in the meantime, or simply used up).
        current = Coupon.objects.filter(pk=coupon.pk).first()
        if current is None or not current.active:
            raise CouponRefused("unknown", f"The coupon code {coupon.code} is no longer valid.")
        if current.ends_at and current.ends_at <= now:
            raise CouponRefused("expired", f"The coupon {coupon.code} has expired.")
        raise CouponRefused("exhausted", f"The coupon {coupon.code} has just been used up.")
    table = _table(CouponCustomerUse)
    guard = f"WHERE {table}.uses < %s" if coupon.max_per_customer is not None else ""
    params: list = [coupon.pk, customer_id]
    if guard:
        params.append(coupon.max_per_customer)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (coupon_id, customer_id, uses) VALUES (%s, %s, 1) "
            f"ON CONFLICT (coupon_id, customer_id) DO UPDATE SET uses = {table}.uses + 1 "
            f"{guard} RETURNING uses",
            params,
        )
        row = cursor.fetchone()
    if row is None:
        raise CouponRefused(
            "per_customer",
            f"You have already used the coupon {coupon.code}"
            + (f" {coupon.max_per_customer} times" if coupon.max_per_customer > 1 else "")
            + ".",
        )


def coupon_release(
    *, order_id: int, now: dt.datetime | None = None, unless_paid: bool = False
) -> bool:
    """Give the order's use back (it failed, the buyer started again, or the checkout was
    left unpaid too long). Once per order: the conditional UPDATE on the redemption decides,
    so a repeat releases nothing; with `unless_paid` it also matches only while the order
    has no paid_at, so it can never release a paid order's use."""
    now = now or timezone.now()
    with transaction.atomic():
        rows = CouponRedemption.objects.filter(order_id=order_id, released_at=None)
        if unless_paid:
            rows = rows.filter(order__paid_at__isnull=True)
        row = rows.values("pk", "coupon_id", "customer_id").first()
        if row is None:
            return False
        if not rows.filter(pk=row["pk"]).update(released_at=now):
            return False
        Coupon.objects.filter(pk=row["coupon_id"], times_redeemed__gt=0).update(
            times_redeemed=F("times_redeemed") - 1
        )
        CouponCustomerUse.objects.filter(
            coupon_id=row["coupon_id"], customer_id=row["customer_id"], uses__gt=0
        ).update(uses=F("uses") - 1)
    return True


def coupon_rehold(*, order_id: int) -> bool:
    """A released order was paid after all (a late success re-read from the gateway): count
    its use again. It was charged at the discounted price, so this may pass the limit."""
    with transaction.atomic():
        row = (
            CouponRedemption.objects.filter(order_id=order_id, released_at__isnull=False)
            .values("pk", "coupon_id", "customer_id")
            .first()
        )
        if row is None or not CouponRedemption.objects.filter(
            pk=row["pk"], released_at__isnull=False
        ).update(released_at=None):
            return False
        Coupon.objects.filter(pk=row["coupon_id"]).update(times_redeemed=F("times_redeemed") + 1)
        CouponCustomerUse.objects.filter(
            coupon_id=row["coupon_id"], customer_id=row["customer_id"]
        ).update(uses=F("uses") + 1)
    return True


def coupon_reclaim(*, order_id: int, now: dt.datetime | None = None) -> bool:
    """The buyer pays a checkout whose held use was given back (left unpaid too long): take
    the use again, within the limits as at redemption (CouponRefused when it has been used
    up, expired or paused meanwhile). Inside the caller's transaction, before the charge: a
    refusal rolls back everything and nothing is charged. False if nothing was released."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("coupon_reclaim must run inside the order's transaction")
    row = CouponRedemption.objects.filter(order_id=order_id, released_at__isnull=False).first()
    if row is None:
        return False
    coupon = Coupon.objects.filter(pk=row.coupon_id).first()
    if coupon is None:
        raise CouponRefused("unknown", f"The coupon code {row.code} is no longer valid.")
    _use_take(coupon=coupon, customer_id=row.customer_id, now=now or timezone.now())
    return bool(
        CouponRedemption.objects.filter(pk=row.pk, released_at__isnull=False).update(
            released_at=None
        )
    )
