"""core.returning: a write joined to the read that follows it, as the money routes use it
(bench/README.md, "Fewer statements on the money routes")."""

import datetime as dt
from decimal import Decimal

from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.returning import update_returning, update_returning_with_related, update_then_select
from storefront.models import Customer, Order, OrderLine
from tests.factories import ProductFactory
from tests.orders import at, make_order

KINDS = ("core", "bump", "upsell")  # an order holds one line of each at most


def _order(tag: str, lines: int):
    customer = Customer.objects.create(email=f"{tag}@buyer.example")
    product = ProductFactory(slug=f"p-{tag}")
    order, made = make_order(
        customer,
        visitor=tag,
        source="",
        paid_at=None,
        status="pending",
        lines=[(kind, product, None, 1000 + i) for i, kind in enumerate(KINDS[:lines])],
    )
    Order.objects.filter(pk=order.pk).update(tax_evidence={"declared_country": "US"})
    return order, made


def test_an_update_returns_the_changed_row_with_its_related_rows_in_one_statement(tenant):
    order, made = _order("a", 3)
    _order("b", 2)  # another order's lines are not its lines
    paid_at = at(6, 1)
    with CaptureQueriesContext(connection) as queries:
        [(moved, lines)] = update_returning_with_related(
            Order,
            assignments='"status" = %s, "paid_at" = %s',
            where='"id" = %s AND "status" = %s',
            params=["paid", paid_at, order.pk, "pending"],
            related=OrderLine,
            fk="order_id",
        )
    assert len(queries) == 1
    assert (moved.pk, moved.status, moved.paid_at) == (order.pk, "paid", paid_at)
    # Converted as the ORM converts them: JSON to a dict, numbers to Decimal.
    assert moved.tax_evidence == {"declared_country": "US"}
    assert [line.pk for line in lines] == [line.pk for line in made]
    assert [line.total_amount for line in lines] == [1000, 1001, 1002]
    assert all(isinstance(line.tax_rate, Decimal) for line in lines)
    assert all(line.order_id == order.pk and line._state.db == "default" for line in lines)
    assert Order.objects.get(pk=order.pk).status == "paid"


def test_a_changed_row_without_related_rows_comes_back_alone_and_no_match_is_empty(tenant):
    order, _ = _order("c", 0)
    params = ["paid", at(6, 1), order.pk, "pending"]
    kwargs = dict(
        assignments='"status" = %s, "paid_at" = %s',
        where='"id" = %s AND "status" = %s',
        related=OrderLine,
        fk="order_id",
    )
    [(moved, lines)] = update_returning_with_related(Order, params=params, **kwargs)
    assert moved.pk == order.pk and lines == []
    assert update_returning_with_related(Order, params=params, **kwargs) == []  # paid now


def test_update_then_select_writes_and_reads_what_was_there_before(tenant):
    order, made = _order("d", 2)
    with CaptureQueriesContext(connection) as queries:
        lines = update_then_select(
            OrderLine.objects.filter(order=order),
            table=Order._meta.db_table,
            assignments='"setup_ref" = %s',
            where='"id" = %s',
            params=["seti_x", order.pk],
        )
    assert len(queries) == 1
    assert [line.pk for line in lines] == [line.pk for line in made]
    assert Order.objects.get(pk=order.pk).setup_ref == "seti_x"


def test_then_runs_only_over_the_rows_the_update_changed(tenant):
    order, made = _order("e", 1)
    other, _ = _order("f", 1)
    then = (
        'UPDATE "storefront_orderline" SET "description" = %s WHERE "order_id" IN '
        '(SELECT "id" FROM "updated")'
    )

    def move(pk):
        return update_returning(
            Order,
            assignments='"status" = %s',
            where='"id" = %s AND "status" = %s',
            params=["failed", pk, "pending"],
            then=then,
            then_params=["touched"],
        )

    assert [o.pk for o in move(order.pk)] == [order.pk]
    assert move(order.pk) == []  # no longer pending: the UPDATE matched nothing, nor did `then`
    assert OrderLine.objects.get(pk=made[0].pk).description == "touched"
    assert OrderLine.objects.get(order=other).description == "core"


def test_extra_returning_columns_become_attributes(tenant):
    order, _ = _order("g", 2)
    [moved] = update_returning(
        Order,
        assignments='"status" = %s',
        where='"storefront_order"."id" = %s',
        params=["failed", order.pk],
        extra='(SELECT count(*) FROM "storefront_orderline" l WHERE l.order_id = '
        '"storefront_order"."id") AS "line_count"',
    )
    assert moved.status == "failed" and moved.line_count == 2
    assert isinstance(moved.created_at, dt.datetime)


def test_rows_are_built_as_raw_builds_them_with_converters_and_extra_columns(tenant):
    from core.returning import _rows

    order, _ = _order("raw", 2)
    sql = (
        'SELECT *, "total_amount" * 2 AS "doubled" FROM "storefront_orderline" '
        'WHERE "order_id" = %s ORDER BY "id"'
    )
    for _ in range(2):  # the second time from the kept plan
        kept = _rows(OrderLine, sql, [order.pk])
        raw = list(OrderLine.objects.raw(sql, [order.pk]))
        assert len(kept) == len(raw) == 2
        for a, b in zip(kept, raw, strict=True):
            assert a.__dict__.keys() == b.__dict__.keys()
            assert {k: v for k, v in a.__dict__.items() if k != "_state"} == {
                k: v for k, v in b.__dict__.items() if k != "_state"
            }
            assert (a._state.db, a._state.adding) == (b._state.db, b._state.adding)
            assert a.doubled == 2 * a.total_amount
    moved = _rows(Order, 'SELECT * FROM "storefront_order" WHERE "id" = %s', [order.pk])
    assert moved[0].tax_evidence == {"declared_country": "US"}  # the JSON field's converter
