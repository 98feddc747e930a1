"""The analytics dashboard: staff only, charts drawn, CSV exports."""

import csv
import io

import pytest
from django.contrib.auth import get_user_model

from tests.analytics.conftest import staff_client_make

URL = "/admin/analytics/dashboard/"


@pytest.fixture
def staff_client(tenant, client_for):
    return staff_client_make(client_for)


def test_the_dashboard_renders_charts_for_staff(hand_store, staff_client):
    page = staff_client.get(URL)
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('<svg role="img"') == 4  # funnel, revenue per day, AOV per day, LTV curves
    assert "Net LTV by purchase-month cohort" in html and "2026-01 takers" in html
    assert "<polyline" in html
    assert "key_reused" in html
    # The money per day (payments' payout ledger) is one click away, on the store's page.
    assert 'href="/admin/getting-started/#money-days"' in html


def test_the_dashboard_is_refused_to_anonymous_visitors(tenant, client_for):
    page = client_for("t1.localhost").get(URL)
    assert page.status_code == 302 and "/admin/login/" in page["Location"]
    assert client_for("t1.localhost").get(URL + "?export=cohorts").status_code == 302


def test_the_dashboard_is_refused_to_non_staff_users(tenant, client_for):
    get_user_model().objects.create_user("buyer", "b@example.com", "pw-123456789")
    client = client_for("t1.localhost")
    client.login(username="buyer", password="pw-123456789")
    assert client.get(URL).status_code == 302


def test_the_take_rate_csv_has_its_header_and_one_row_per_source(hand_store, staff_client):
    response = staff_client.get(URL, {"export": "take_rates_source"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows == [
        ["source", "offered", "accepted", "taken", "rate"],
        ["ads", "2", "1", "1", "0.5000"],
        ["ig", "5", "1", "1", "0.2000"],
    ]


def test_the_cohort_csv_respects_the_source_filter(hand_store, staff_client):
    response = staff_client.get(URL, {"export": "cohorts", "source": "ads"})
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["cohort"], r["taker"], r["buyers"], r["ltv30"], r["ltv60"]) for r in rows] == [
        ("2026-01-01", "True", "1", "7600", "4900")
    ]  # Bob: upsell charged back on day 48


def test_every_view_exports_a_csv_with_its_header(hand_store, staff_client):
    from analytics.selectors import MetricFilter
    from analytics.views import _views

    views = _views(MetricFilter())
    assert views
    for name, (columns, _) in views.items():
        response = staff_client.get(URL, {"export": name})
        assert response.status_code == 200, name
        assert next(csv.reader(io.StringIO(response.content.decode()))) == columns


def test_bad_filters_get_a_clear_400(staff_client):
    assert staff_client.get(URL, {"start": "yesterday"}).status_code == 400
    assert staff_client.get(URL, {"export": "everything"}).status_code == 400
