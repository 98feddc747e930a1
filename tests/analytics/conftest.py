"""A store small enough to check every metric by hand (figures in test_metrics.py)."""

from types import SimpleNamespace

import pytest

from analytics.rollups import rollups_refresh
from offers.models import OfferKind
from storefront.models import Customer
from tests.factories import OfferFactory, ProductFactory
from tests.orders import at, attempt, event, ledger, make_order


@pytest.fixture(autouse=True)
def _page_view_memory():
    """The suite clears Redis after each test; the page-view recorder's per-process memory
    (the day's salt, the keys it saw) goes with it."""
    from analytics import pageviews

    pageviews.local_state_clear()
    yield
    pageviews.local_state_clear()


def staff_client_make(client_for):
    """A client logged in as a staff user of t1 (in the connection's current tenant)."""
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user("creator", "c@example.com", "pw-123456789", is_staff=True)
    client = client_for("t1.localhost")
    assert client.login(username="creator", password="pw-123456789")
    return client


@pytest.fixture
def hand_store(tenant):
    return hand_store_build()


def hand_store_build() -> SimpleNamespace:
    """The store of test_metrics.py, in the connection's current tenant (committed or not, as
    the caller's fixture has it)."""
    core = ProductFactory(price_amount=4900)
    bump = OfferFactory(kind=OfferKind.BUMP, trigger_product=core, price_amount=900)
    upsell = OfferFactory(kind=OfferKind.UPSELL, trigger_product=core, price_amount=2700)
    alice, bob, carol, dan, eve = (
        Customer.objects.create(email=f"{n}@buyer.example")
        for n in ("alice", "bob", "carol", "dan", "eve")
    )

    # Alice (ig): core + bump on 10 Jan, bump refunded on 20 Jan; buys again on 15 Feb.
    o1, (o1_core, o1_bump) = make_order(
        alice,
        visitor="v1",
        source="ig",
        paid_at=at(1, 10),
        lines=[("core", core, None, 4900), ("bump", bump.product, bump, 900)],
    )
    ledger(o1_bump, "refund", 900, at(1, 20))
    o4, _ = make_order(
        alice, visitor="v1", source="ig", paid_at=at(2, 15), lines=[("core", core, None, 4900)]
    )
    # Bob (ads): core on 12 Jan + upsell, the upsell charged back on 1 Mar (day 48).
    o2, (_, o2_up) = make_order(
        bob,
        visitor="v2",
        source="ads",
        paid_at=at(1, 12),
        lines=[("core", core, None, 4900), ("upsell", upsell.product, upsell, 2700)],
    )
    ledger(o2_up, "chargeback", 2700, at(3, 1))
    # Carol (ig): core only on 15 Jan.
    o3, _ = make_order(
        carol, visitor="v3", source="ig", paid_at=at(1, 15), lines=[("core", core, None, 4900)]
    )
    # Dan (ig): core only on 3 Feb, fully refunded on 5 Feb.
    o5, (o5_core,) = make_order(
        dan, visitor="v4", source="ig", paid_at=at(2, 3), lines=[("core", core, None, 4900)]
    )
    ledger(o5_core, "refund", 4900, at(2, 5))
    # Eve (ads): a checkout that never paid.
    o6, _ = make_order(
        eve,
        visitor="v6",
        source="ads",
        paid_at=None,
        status="failed",
        lines=[("core", core, None, 4900)],
    )

    # Sessions: v1–v4 and v6 started checkouts; v5 (ig) only looked.
    for order in (o1, o4, o2, o3, o5, o6):
        event("checkout_initiated", order.paid_at or at(2, 20), order, product_id=core.pk)
    event("page_viewed", at(1, 11), visitor_id="v5", source="ig", product_id=core.pk)
    for order in (o1, o4, o2, o3, o5):
        event("checkout_completed", order.paid_at, order, amount=1)
    # Bump offered on o1, o2, o3, o5; taken on o1. Upsell offered on o1, o2, o3; taken on o2.
    for order in (o1, o2, o3, o5):
        event("bump_offered", order.paid_at, order, offer_id=bump.pk)
    event("bump_accepted", o1.paid_at, o1, offer_id=bump.pk)
    for order in (o1, o2, o3):
        event("upsell_offered", order.paid_at, order, offer_id=upsell.pk)
    event("upsell_accepted", o2.paid_at, o2, offer_id=upsell.pk)
    # Reliability: two idempotency conflicts, three upsell failures.
    event("idempotency_conflict", at(1, 12), o2, reason="key_reused")
    event("idempotency_conflict", at(1, 15), o3, reason="key_reused")
    event("upsell_failed", at(1, 10), o1, offer_id=upsell.pk, reason="card_declined")
    event("upsell_failed", at(1, 15), o3, offer_id=upsell.pk, reason="card_declined")
    event("upsell_failed", at(2, 3), o5, offer_id=upsell.pk, reason="authentication_required")
    # Time to charge: o2's upsell in 4 s, o4's downsell in 10 s; a declined upsell and a
    # primary charge are not upsell charges and must not count.
    attempt(o2, "upsell", at(1, 12), 4)
    attempt(o4, "downsell", at(2, 15), 10)
    attempt(o3, "upsell", at(1, 15), 30, status="declined")
    attempt(o1, "primary", at(1, 10), 100)
    # The dashboard folds queued changes into its read models before it reads (as the view
    # does); the figures in test_metrics.py must come out the same either way.
    rollups_refresh()
    return SimpleNamespace(core=core, bump=bump, upsell=upsell, orders=(o1, o2, o3, o4, o5, o6))


@pytest.fixture(scope="class")
def workload_shared(django_db_setup, django_db_blocker):
    """The mixed workload (tests/analytics/workload.py), made once for a class of read-only
    tests inside a transaction that is rolled back after the class. Each test runs in a
    savepoint of it (pytest-django's `db` nests), so what a test writes (a rollups refresh,
    a session) is undone before the next one; Redis and the page-view recorder's memory are
    put back to the snapshot taken after the workload (`workload` below)."""
    import os
    import urllib.request

    from django.db import connection, transaction
    from django.test import Client
    from django_redis import get_redis_connection

    from analytics import pageviews
    from tests.admin.conftest import OWNER_ADDRESS, OWNER_AGENT
    from tests.analytics.workload import run_workload
    from tests.conftest import _creator

    req = urllib.request.Request(os.environ["STRIPE_API_BASE"] + "/_config/data", method="DELETE")
    urllib.request.urlopen(req, timeout=5).close()
    redis = get_redis_connection("default")
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer._from_testcase = True  # stands for the test's own transaction, as Django's do
        outer.__enter__()
        try:
            connection.set_tenant(_creator("t1"))
            redis.flushdb()
            pageviews.local_state_clear()
            owner = Client(
                HTTP_HOST="t1.localhost", REMOTE_ADDR=OWNER_ADDRESS, HTTP_USER_AGENT=OWNER_AGENT
            )
            assert owner.login(username="owner", password="owner-pass-123")
            w = run_workload(owner)
            keys = {key: (redis.dump(key), redis.pttl(key)) for key in redis.keys("*")}
            memory = (dict(pageviews._salts), dict(pageviews._seen))
            yield w, keys, memory
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
            connection.set_schema_to_public()
            redis.flushdb()
            pageviews.local_state_clear()


@pytest.fixture
def workload(workload_shared, tenant, _page_view_memory):
    """This test's view of the shared workload: Redis and the recorder's memory as the
    workload left them, and copies of its rows' objects (a test may refresh or change them)."""
    import copy
    import dataclasses

    from django_redis import get_redis_connection

    from analytics import pageviews

    w, keys, (salts, seen) = workload_shared
    redis = get_redis_connection("default")
    redis.flushdb()
    for key, (dumped, pttl) in keys.items():
        redis.restore(key, max(pttl, 0), dumped)
    pageviews._salts.update(salts)
    pageviews._seen.update(seen)
    owner = w.owner
    mine = copy.deepcopy(dataclasses.replace(w, owner=None))
    mine.owner = owner
    return mine
