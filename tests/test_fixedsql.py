"""core.fixedsql: the hot reads' SQL compiled once per process must stay the SQL Django would
compile for the same values, in every tenant's schema (bench/README.md, "Compiled once per
process")."""

import unicodedata

import pytest
from django.db import connection, transaction
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext

from core import fixedsql
from core.fixedsql import FixedQuery
from core.identity import email_key
from offers import experiments
from offers import selectors as offer_selectors
from payments import connect, vault
from payments import services as payment_services
from payments.models import GatewayCustomer
from storefront import models as storefront_models
from storefront import selectors
from storefront.models import Customer, Order
from storefront.services.followups import schedule
from storefront.services.upsell import gate, present
from storefront.tax import providers
from tests.orders import make_order

# Every FixedQuery of the product, with arguments of the types its callers pass and how they
# run it: a new one must be added here, so its SQL is checked too.
USES: dict = {}
for _query, _how, _args in (
    (selectors._ACTIVE_BY_SLUG, "first", ("course",)),
    (selectors._ORDER_WITH_CUSTOMER, "first", ("tok-1",)),
    (selectors._ORDER_FOR_PAYMENT, "first", ("tok-2",)),
    (offer_selectors._BUMP, "first", (11,)),
    (offer_selectors._UPSELL, "first", (12,)),
    (offer_selectors._DOWNSELL, "first", (13,)),
    (experiments._RUNNING, "first", (14,)),
    (present._CORE_LINE, "first", (15,)),
    (present._ORDER_DECISIONS, "all", (16,)),
    (present._ORDER_DECISIONS, "exists", (16,)),
    (gate._OUTCOME_DECISION, "first", (17, 18)),
    (schedule._CROSS_SELL, "first", (19, "EUR")),
    (storefront_models._STORE_SETTINGS, "all", ()),
    (payment_services._CUSTOMER_BY_EMAIL, "first", ("a@b.example",)),
    (connect._PAYOUT_ACCOUNT, "first", ()),
    (vault._METHOD_FOR, "first", ("c@d.example",)),
    (vault._METHOD_REFS, "sql", ("e@f.example",)),
    (selectors.ORDER_LINES, "sql", (20,)),
    (present._OWNED_ELSEWHERE, "exists", (21, 22)),
    (present._ON_ORDER, "exists", (23, 24)),
    (providers.country_rates(), "all", ("DE", "BY")),
):
    USES.setdefault(_query, []).append((_how, _args))


def _cached(query: FixedQuery, how: str, args: tuple) -> tuple[str, list]:
    if how == "sql":
        sql, params = query.sql(*args)
        return sql, list(params)
    _, compiled = query._get(args, how)
    return compiled.sql, query._params(compiled, args)


def test_every_fixed_query_is_checked_here():
    assert set(fixedsql.REGISTRY) == set(USES)


@pytest.mark.parametrize(
    ("query", "how", "args"),
    [(q, how, args) for q, uses in USES.items() for how, args in uses],
    ids=lambda v: v.name if isinstance(v, FixedQuery) else None,
)
def test_the_kept_sql_is_what_django_compiles_for_the_same_values(tenant, query, how, args):
    with transaction.atomic():  # a select_for_update compiles only inside one
        for values in (args, tuple(v * 2 if isinstance(v, int) else v + "x" for v in args)):
            cached_sql, cached_params = _cached(query, how, values)
            fresh_sql, fresh_params = query.fresh_sql(*values, mode=how if how != "sql" else "all")
            assert cached_sql == fresh_sql
            assert cached_params == fresh_params
            assert [type(p) for p in cached_params] == [type(p) for p in fresh_params]
            assert connection.tenant.schema_name not in cached_sql


def _order(token: str, email: str) -> Order:
    customer = Customer.objects.create(email=email)
    order, _ = make_order(
        customer, visitor=token, source="", paid_at=None, status="pending", lines=[]
    )
    Order.objects.filter(pk=order.pk).update(token=token)
    return Order.objects.get(pk=order.pk)


def test_one_compile_reads_each_tenants_own_rows(tenant, other_tenant):
    mine = _order("fx-shared", "one@buyer.example")
    found = selectors.order_with_customer(token="fx-shared")
    assert (found.pk, found.customer.email) == (mine.pk, "one@buyer.example")
    kept = dict(selectors._ORDER_WITH_CUSTOMER._cache)
    connection.set_tenant(other_tenant)
    assert selectors.order_with_customer(token="fx-shared") is None
    theirs = _order("fx-shared", "two@buyer.example")
    found = selectors.order_with_customer(token="fx-shared")
    assert (found.pk, found.customer.email) == (theirs.pk, "two@buyer.example")
    assert selectors._ORDER_WITH_CUSTOMER._cache == kept  # compiled once, for both schemas
    connection.set_tenant(tenant)
    assert selectors.order_with_customer(token="fx-shared").customer.email == "one@buyer.example"


def test_instances_match_the_orms_with_related_rows_and_annotations(tenant):
    order = _order("fx-pay", "pay@buyer.example")
    with CaptureQueriesContext(connection) as queries:
        kept = selectors.order_for_payment(token="fx-pay")
        assert kept.customer.email == "pay@buyer.example"  # joined, not read again
    assert len(queries.captured_queries) == 1
    orm = selectors._order_for_payment("fx-pay").first()
    assert kept.__dict__.keys() == orm.__dict__.keys()
    for name in ("pk", "token", "status", "customer_id", "primary_attempt_id", "created_at"):
        assert getattr(kept, name) == getattr(orm, name)
    assert kept.customer.gateway_customer_id == orm.customer.gateway_customer_id
    assert kept._state.db == orm._state.db and not kept._state.adding
    assert order.pk == kept.pk


def test_arguments_that_would_change_the_sql_or_be_converted_are_refused(tenant):
    with pytest.raises(TypeError):
        selectors._ORDER_WITH_CUSTOMER.first(None)  # IS NULL: another shape
    with pytest.raises(TypeError):
        selectors._ORDER_WITH_CUSTOMER.first(True)
    converted = FixedQuery(Order, lambda t: Order.objects.filter(token__icontains=t))
    try:
        with pytest.raises(ValueError, match="not sent as given"):
            converted.first("abc")  # sent as '%abc%': the probe is not found as given
        as_text = FixedQuery(Order, lambda t: Order.objects.filter(token=t))
        with pytest.raises(ValueError, match="not sent as given"):
            as_text.first(5)  # an int for a text column is converted to '5'
    finally:
        del fixedsql.REGISTRY[-2:]


def test_a_locking_read_still_refuses_to_run_outside_a_transaction(tenant, monkeypatch):
    assert gate._OUTCOME_DECISION.first(1, 2) is None  # compiled (the test's transaction)
    monkeypatch.setattr(connection, "get_autocommit", lambda: True)  # as outside one
    with pytest.raises(TransactionManagementError):
        gate._OUTCOME_DECISION.first(1, 2)


def test_exists_and_the_lines_sql_answer_as_the_orm_does(tenant):
    order = _order("fx-lines", "lines@buyer.example")
    assert selectors.ORDER_LINES.sql(order.pk) == order.lines.all().query.sql_with_params()
    assert present._ORDER_DECISIONS.exists(order.pk) is False
    assert present._ON_ORDER.exists(order.pk, 1) is order.lines.filter(product_id=1).exists()


@pytest.mark.parametrize(
    "normalise",
    [email_key, str.lower, str.strip, lambda v: unicodedata.normalize("NFKC", v)],
    ids=["email_key", "lower", "strip", "nfkc"],
)
def test_a_normalisation_inside_the_build_is_refused_not_skipped(tenant, normalise):
    # Kept SQL would send later arguments as given, skipping the normalisation: a saved card
    # looked up by "BUYER@ｅｘａｍｐｌｅ.ＣＯＭ" would not be found (it was, in the first cut).
    normalised = FixedQuery(
        GatewayCustomer, lambda e: GatewayCustomer.objects.filter(email=normalise(e))
    )
    try:
        with pytest.raises(ValueError, match="not sent as given"):
            normalised.first("buyer@example.com")
    finally:
        del fixedsql.REGISTRY[-1:]
