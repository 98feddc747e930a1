"""Prepared statements (tenants.backend `prepared_cursor`): the fixed-shape reads and writes of
core.fixedsql and core.returning are bound on the server and prepared per connection, and must
still read and write only the schema the connection is in now; the rest of the ORM stays
bound on the client and is never prepared (bench/README.md "Prepared on the server")."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.returning import update_returning
from storefront import selectors
from storefront.models import Order
from tests.orders import pending_order


def _prepared() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def _read(token: str) -> str | None:
    found = selectors.order_with_customer(token=token)
    return None if found is None else found.customer.email


def test_a_prepared_read_reads_the_schema_the_connection_is_in_now(tenant, other_tenant):
    pending_order("pp-shared", "one@buyer.example")
    for _ in range(3):  # prepared from the second run (prepare_threshold 2)
        assert _read("pp-shared") == "one@buyer.example"
    prepared = [s for s in _prepared() if '"storefront_order"."token" = $1' in s]
    assert prepared, "the fixed read was not prepared on the server"
    assert not any(tenant.schema_name in s for s in prepared)  # names no schema

    connection.set_tenant(other_tenant)
    assert _read("pp-shared") is None  # the same prepared statement, the other schema
    pending_order("pp-shared", "two@buyer.example")
    for _ in range(3):
        assert _read("pp-shared") == "two@buyer.example"
    connection.set_tenant(tenant)
    assert _read("pp-shared") == "one@buyer.example"


def test_a_prepared_write_changes_only_the_schema_the_connection_is_in(tenant, other_tenant):
    mine = pending_order("pp-write", "w1@buyer.example")
    connection.set_tenant(other_tenant)
    theirs = pending_order("pp-write", "w2@buyer.example")
    for round_ in range(3):
        for current, order in ((tenant, mine), (other_tenant, theirs)):
            connection.set_tenant(current)
            rows = update_returning(
                Order,
                assignments='"country" = %s',
                where='"token" = %s',
                params=[f"{current.schema_name[-2:].upper()}", "pp-write"],
            )
            assert [row.pk for row in rows] == [order.pk], (round_, current.schema_name)
    assert any(s.startswith('UPDATE "storefront_order" SET "country" = $1') for s in _prepared())
    connection.set_tenant(tenant)
    assert Order.objects.get(pk=mine.pk).country == tenant.schema_name[-2:].upper()
    connection.set_tenant(other_tenant)
    assert Order.objects.get(pk=theirs.pk).country == other_tenant.schema_name[-2:].upper()


def test_a_prepared_read_survives_a_schema_whose_table_has_a_column_more(tenant, other_tenant):
    # A migration runs schema by schema: for a while one store's table has a column the other's
    # lacks. The kept statement names its columns, so its rows keep their shape in both.
    pending_order("pp-migrating", "m1@buyer.example")
    for _ in range(3):
        assert _read("pp-migrating") == "m1@buyer.example"
    connection.set_tenant(other_tenant)
    with connection.cursor() as cursor:
        cursor.execute('ALTER TABLE "storefront_order" ADD COLUMN "pp_later" integer')
    pending_order("pp-migrating", "m2@buyer.example")
    assert _read("pp-migrating") == "m2@buyer.example"
    connection.set_tenant(tenant)
    assert _read("pp-migrating") == "m1@buyer.example"


def test_the_rest_of_the_orm_is_bound_on_the_client_and_never_prepared(tenant):
    assert connection.connection.prepare_threshold == 2
    pending_order("pp-orm", "orm@buyer.example")
    for _ in range(4):
        assert Order.objects.filter(token="pp-orm").count() == 1
    assert not any("COUNT(*)" in s for s in _prepared())


def test_a_logged_prepared_statement_shows_its_values(tenant):
    pending_order("pp-logged", "log@buyer.example")
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            _read("pp-logged")
    sql = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith("SET ")]
    assert len(sql) == 3 and all("'pp-logged'" in s for s in sql)
