"""Dashboard and metric reads on a real streaming replica (core/replica.py).

One hot standby of the suite's PostgreSQL (tests/conftest.py `standby`, shared with
tests/api/test_replica_api.py) serves the module. The connection alias `replica` points at the
test database on it, as DATABASE_REPLICA_URL would (`replica_alias`).
"""

from __future__ import annotations

import re
import threading

import pytest
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.test.utils import CaptureQueriesContext

from analytics import insights, selectors
from analytics.selectors import MetricFilter
from core import replica
from tests.analytics.conftest import hand_store_build, staff_client_make
from tests.replica_support import replica_fails_at

pytestmark = pytest.mark.slow

URL = "/admin/analytics/dashboard/"


@pytest.fixture
def committed_store(live_tenant):
    return hand_store_build()


@pytest.fixture
def staff_client(live_tenant, client_for):
    return staff_client_make(client_for)


def test_dashboard_reads_go_to_the_replica_and_match_the_primary(
    committed_store, staff_client, replica_alias
):
    on_primary = selectors.funnel(MetricFilter())  # outside a block: the primary
    with CaptureQueriesContext(connections[replica.REPLICA]) as on_replica:
        page = staff_client.get(URL)
    assert page.status_code == 200
    metric_sql = [q["sql"] for q in on_replica.captured_queries if "analytics_" in q["sql"]]
    assert len(metric_sql) >= 10  # every chart and table of the page read there
    # The schema on the standby is the store's, and the figures are the primary's.
    with replica.replica_reads():
        assert replica.read_alias() == replica.REPLICA
        assert selectors.funnel(MetricFilter()) == on_primary
        assert selectors.funnel(MetricFilter()) == selectors.funnel_direct(MetricFilter())


def test_the_dashboards_revenue_series_and_leaderboard_are_read_on_the_replica_too(
    committed_store, staff_client, replica_alias, monkeypatch
):
    seen = []
    for name in ("revenue_days", "offer_leaderboard"):
        real = getattr(insights, name)

        def spy(*args, real=real, name=name, **kwargs):
            seen.append((name, replica.read_alias()))
            return real(*args, **kwargs)

        monkeypatch.setattr(insights, name, spy)
    assert staff_client.get(URL).status_code == 200
    assert seen == [("revenue_days", replica.REPLICA), ("offer_leaderboard", replica.REPLICA)]


def test_a_replica_behind_the_primary_is_not_read(
    committed_store, replica_alias, standby, settings
):
    from storefront.models import Customer

    settings.DATABASE_REPLICA_MAX_LAG = 0.3
    with standby.replay_paused():
        Customer.objects.create(email="late@buyer.example")  # committed on the primary only
        with replica.replica_reads():
            assert replica.read_alias() == DEFAULT_DB_ALIAS
            assert Customer.objects.filter(email="late@buyer.example").exists()
    settings.DATABASE_REPLICA_MAX_LAG = 10
    with replica.replica_reads():  # caught up again: back on the replica, with the row
        assert replica.read_alias() == replica.REPLICA
        assert Customer.objects.filter(email="late@buyer.example").exists()


def test_a_write_in_the_block_is_read_back(committed_store, replica_alias):
    from storefront.models import Customer

    with replica.replica_reads():
        assert replica.read_alias() == replica.REPLICA
        Customer.objects.create(email="mine@buyer.example")  # the router re-plans
        assert Customer.objects.filter(email="mine@buyer.example").exists()


def test_reads_in_a_transaction_stay_on_the_primary(committed_store, replica_alias):
    from storefront.models import Customer

    with replica.replica_reads(), transaction.atomic():
        Customer.objects.create(email="uncommitted@buyer.example")
        assert replica.read_alias() == DEFAULT_DB_ALIAS
        assert Customer.objects.filter(email="uncommitted@buyer.example").exists()


def test_a_replica_that_is_down_falls_back_to_the_primary(
    committed_store, replica_alias, staff_client, standby
):
    replica_alias["PORT"] = "1"  # nothing listens there
    connections[replica.REPLICA].close()
    del connections[replica.REPLICA]
    page = staff_client.get(URL)
    assert page.status_code == 200 and "2026-01 takers" in page.content.decode()
    with replica.replica_reads():  # marked down: not even tried until the retry time
        assert replica.read_alias() == DEFAULT_DB_ALIAS
        assert connections[replica.REPLICA].connection is None
    replica.replica_retry_now()
    replica_alias["PORT"] = str(standby.port)  # back up: read there again
    connections[replica.REPLICA].close()
    del connections[replica.REPLICA]
    with replica.replica_reads():
        assert replica.read_alias() == replica.REPLICA


@pytest.fixture
def read_token(live_tenant):
    from partners.models import ApiKey
    from partners.services import api_key_create

    yield api_key_create(name="analyst", scope=ApiKey.Scope.READ).token
    ApiKey.objects.all().delete()  # committed: live_tenant leaves the partners tables alone


def test_the_metrics_api_reads_on_the_replica(
    committed_store, replica_alias, client_for, read_token
):
    client = client_for("t1.localhost")
    with CaptureQueriesContext(connections[replica.REPLICA]) as on_replica:
        answer = client.get("/api/v1/metrics/funnel/", HTTP_AUTHORIZATION=f"Bearer {read_token}")
    assert answer.status_code == 200, answer.content
    assert any("analytics_" in q["sql"] for q in on_replica.captured_queries)
    steps = {row["step"]: row["visitors"] for row in answer.json()}
    direct = {row["step"]: row["visitors"] for row in selectors.funnel_direct(MetricFilter())}
    assert steps == direct


def test_each_thread_chooses_for_itself(committed_store, replica_alias):
    """The plan is per context: a thread outside a block reads the primary meanwhile."""
    seen = {}

    def outside():
        seen["alias"] = replica.read_alias()

    with replica.replica_reads():
        assert replica.read_alias() == replica.REPLICA
        worker = threading.Thread(target=outside)
        worker.start()
        worker.join()
    assert seen["alias"] == DEFAULT_DB_ALIAS


# --- a replica that fails under the page (core/replica.py `replica_reads_call`) ------------


def _experiments_read(n, sql):
    """The page's first ORM read (the experiment cards), after the metrics' raw reads."""
    return 'FROM "analytics_experiment"' in sql


def _without_csrf(page) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", page.content.decode())


def test_a_dashboard_whose_standby_backend_is_ended_mid_page_shows_the_same_figures(
    committed_store, staff_client, replica_alias, standby
):
    clean = staff_client.get(URL)
    assert clean.status_code == 200
    replica.replica_retry_now()
    with (
        replica_fails_at(standby, _experiments_read) as fault,
        CaptureQueriesContext(connections[DEFAULT_DB_ALIAS]) as on_primary,
    ):
        page = staff_client.get(URL)
    assert fault.made
    assert page.status_code == 200
    assert _without_csrf(page) == _without_csrf(clean)
    # Read again on the primary from the start: the metrics' SQL as well as the ORM's.
    assert sum("analytics_" in q["sql"] for q in on_primary.captured_queries) >= 10
    with replica.replica_reads():  # and the standby is left alone for the retry time
        assert replica.read_alias() == DEFAULT_DB_ALIAS


def test_a_csv_export_whose_standby_shuts_down_mid_export_is_the_same_file(
    committed_store, staff_client, replica_alias, standby
):
    clean = staff_client.get(URL, {"export": "experiments"})
    assert clean.status_code == 200 and clean["Content-Type"].startswith("text/csv")
    replica.replica_retry_now()
    with replica_fails_at(standby, _experiments_read, how="shutdown") as fault:
        export = staff_client.get(URL, {"export": "experiments"})
    assert fault.made
    assert export.status_code == 200
    assert export.content == clean.content


def test_a_failure_of_the_primarys_under_the_page_is_not_retried(
    committed_store, staff_client, replica_alias, standby, settings
):
    """The standby is behind beyond the bound, so the page reads on the primary; its read
    of the experiments fails there: the request fails with that error, after one run."""
    from django.db import OperationalError

    from storefront.models import Customer

    calls = []

    def primary_fails(execute, sql, params, many, context):
        if _experiments_read(0, sql):
            calls.append(sql)
            raise OperationalError("the primary failed")
        return execute(sql, params, many, context)

    settings.DATABASE_REPLICA_MAX_LAG = 0.2
    with (
        standby.replay_paused(),
        CaptureQueriesContext(connections[replica.REPLICA]) as on_replica,
        connections[DEFAULT_DB_ALIAS].execute_wrapper(primary_fails),
        pytest.raises(OperationalError, match="the primary failed"),
    ):
        Customer.objects.create(email="late@buyer.example")  # the standby does not have it
        staff_client.get(URL, {"export": "experiments"})
    assert len(calls) == 1
    assert not any("analytics_" in q["sql"] for q in on_replica.captured_queries)
    settings.DATABASE_REPLICA_MAX_LAG = 5
    with replica.replica_reads():  # not marked down: the standby was not at fault
        assert replica.read_alias() == replica.REPLICA


def test_a_raw_reads_fallback_that_fails_on_the_primary_is_not_run_again(
    committed_store, replica_alias, standby
):
    """`read_with_fallback` reads on the primary while handling the standby's failure; that
    read's own failure is the primary's, and `replica_reads_call` does not run the read a
    third time for it."""
    from django.db import OperationalError

    calls = []

    def primary_fails(execute, sql, params, many, context):
        if "analytics_" in sql:
            calls.append(sql)
            raise OperationalError("the primary failed")
        return execute(sql, params, many, context)

    with (
        replica_fails_at(standby, lambda n, sql: "analytics_" in sql) as fault,
        connections[DEFAULT_DB_ALIAS].execute_wrapper(primary_fails),
        pytest.raises(OperationalError, match="the primary failed"),
    ):
        replica.replica_reads_call(selectors.funnel, MetricFilter())
    assert fault.made
    assert len(calls) == 1
