"""Issue 24, checked from outside: after a mixed workload made through the hosted pages, the
store admin and the partner API, every figure equals what the buyers' side knows and a
recomputation from the source tables; each read model equals its `*_direct` oracle; the
dashboard, its CSV and the API show the same figure; a refund spike made through the real
refund path pauses an upsell."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.test import Client
from django.utils import timezone

from analytics import selectors
from analytics.models import Event
from analytics.rollups import rollups_refresh
from analytics.selectors import MetricFilter
from offers.guardrails import GuardrailPolicy, offer_guardrails_enforce
from offers.models import Offer
from partners.models import ApiKey
from partners.services import api_key_create
from payments.models import LedgerEntry, Refund, RefundStatus
from storefront.models import OrderLine, OrderStatus
from tests.admin.conftest import owner_client  # noqa: F401 (a fixture)
from tests.analytics.workload import (
    HOST,
    Workload,
    api_refund,
    assert_figures_equal_their_oracles,
    visitor,
)
from tests.upsell.helpers import buy, make_catalog, offer_token

pytestmark = pytest.mark.gateway

PAID = (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED)


def _share(part: int, whole: int) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def _per_unit(amount: int, count: int) -> int:
    return int((Decimal(amount) / count).quantize(Decimal(1), rounding=ROUND_HALF_UP))


# --- recomputations written independently of analytics (ORM over the source tables) ------


def _paid_lines() -> list[OrderLine]:
    return list(OrderLine.objects.filter(order__paid_at__isnull=False).select_related("order"))


def _recomputed_refunds() -> dict[str, dict[str, int]]:
    """Per line kind, from the lines, the Refund rows and the ledger (matched in Python through
    the line's own key, as the writers key it)."""
    out: dict[str, dict[str, int]] = {}
    for line in _paid_lines():
        ledger = LedgerEntry.objects.filter(reference=line.order.reference, line_key=line.line_key)
        charged = sum(e.amount for e in ledger if e.kind == "charge")
        refunded = sum(e.amount for e in ledger if e.kind == "refund")
        assert refunded == sum(
            r.amount
            for r in Refund.objects.filter(
                reference=line.order.reference,
                line_key=line.line_key,
                status=RefundStatus.SUCCEEDED,
            )
        )
        row = out.setdefault(
            line.kind, dict.fromkeys(("sold", "full", "partial", "charged", "refunded"), 0)
        )
        row["sold"] += charged > 0
        row["full"] += charged > 0 and refunded >= charged
        row["partial"] += 0 < refunded < charged
        row["charged"] += charged
        row["refunded"] += refunded
    return out


def _recomputed_traffic(source: str | None = None) -> tuple[int, int]:
    """(sessions, visitors): distinct visitor-days and visitors with a page view or checkout
    start."""
    events = Event.objects.filter(name__in=["page_viewed", "checkout_initiated"]).exclude(
        visitor_id=""
    )
    if source is not None:
        events = events.filter(source=source)
    pairs = {(e.visitor_id, e.occurred_at.astimezone(dt.UTC).date()) for e in events}
    return len(pairs), len({v for v, _ in pairs})


def _recomputed_funnel() -> dict[str, tuple[int, int]]:
    counts: dict[str, list] = defaultdict(lambda: [0, set()])
    for e in Event.objects.all():
        kind = e.properties.get("kind") if isinstance(e.properties, dict) else None
        step = e.name
        if e.name.startswith("upsell_") and kind in ("downsell", "cross_sell"):
            step = kind + e.name.removeprefix("upsell")
        counts[step][0] += 1
        if e.visitor_id:
            counts[step][1].add(e.visitor_id)
    return {step: (n, len(seen)) for step, (n, seen) in counts.items()}


# --- the checks ------------------------------------------------------------------------------


class TestOnTheWorkload:
    """One workload for the class (tests/analytics/conftest.py `workload_shared`); each
    test reads it in a savepoint of its own."""

    def test_a_mixed_workload_gives_the_figures_the_buyers_side_and_the_source_tables_give(
        self,
        workload,
    ):
        w = workload
        rollups_refresh()
        o = w.orders
        paid = [name for name, order in o.items() if order.status in PAID]
        assert sorted(paid) == ["a", "b", "c", "d", "g", "h"]  # e abandoned, f declined

        # The funnel: one page view per visitor per page (reloads, a crawler, a prefetch not
        # counted), then each step as the buyers took it.
        funnel = {r["step"]: (r["events"], r["visitors"]) for r in selectors.funnel(MetricFilter())}
        assert funnel == {
            "page_viewed": (w.page_views, len(w.visitors)),
            "checkout_initiated": (8, 8),
            "checkout_completed": (6, 6),
            "bump_offered": (8, 8),
            "bump_accepted": (3, 3),  # a, c and e ticked it; e never paid
            "upsell_offered": (6, 6),
            "upsell_accepted": (2, 2),  # a, and d who abandoned 3-D Secure
            "upsell_charged": (1, 1),
            "downsell_offered": (4, 4),
            "downsell_accepted": (1, 1),
            "downsell_charged": (1, 1),
        }
        recomputed = _recomputed_funnel()
        assert funnel == {step: recomputed.get(step, (0, 0)) for step in funnel}
        assert (w.page_views, len(w.visitors)) == (10, 9)

        # Sessions and visitors: every browsing visitor, not only those who started a checkout.
        assert selectors.traffic(MetricFilter()) == {"sessions": 9, "visitors": 9}
        assert _recomputed_traffic() == (9, 9)

        # Revenue per session and per visitor, gross and net of the refunds.
        gross = sum(line.total_amount for line in _paid_lines())
        returned = sum(r.amount for r in Refund.objects.filter(status=RefundStatus.SUCCEEDED))
        assert returned == sum(f["amount"] for f in w.refunds.values())
        [value] = selectors.order_value(MetricFilter())
        assert value == {
            "currency": "USD",
            "orders": 6,
            "sessions": 9,
            "visitors": 9,
            "gross": gross,
            "net": gross - returned,
            "aov": _per_unit(gross, 6),
            "net_aov": _per_unit(gross - returned, 6),
            "revenue_per_session": _per_unit(gross, 9),
            "net_revenue_per_session": _per_unit(gross - returned, 9),
            "revenue_per_visitor": _per_unit(gross, 9),
            "net_revenue_per_visitor": _per_unit(gross - returned, 9),
        }

        # Refund rates per kind of line: every kind joins its ledger rows (upsell, downsell and
        # cross-sell lines are keyed by order, core and bump by line).
        rates = {r["kind"]: r for r in selectors.refund_rates(MetricFilter(), by="kind")}
        recomputed_refunds = _recomputed_refunds()
        sold = {"core": 6, "bump": 2, "upsell": 1, "downsell": 1, "cross_sell": 1}
        assert set(rates) == set(sold) == set(recomputed_refunds)
        for kind, row in rates.items():
            known = w.refunds.get(kind, {"full": 0, "partial": 0, "amount": 0})
            again = recomputed_refunds[kind]
            assert (row["sold"], row["refunded_lines"], row["partially_refunded_lines"]) == (
                sold[kind],
                known["full"],
                known["partial"],
            ), kind
            assert (again["sold"], again["full"], again["partial"]) == (
                sold[kind],
                known["full"],
                known["partial"],
            ), kind
            assert (row["charged_amount"], row["refunded_amount"]) == (
                again["charged"],
                known["amount"],
            ), kind
            assert row["refund_rate"] == _share(known["full"], sold[kind]), kind
            assert row["partial_refund_rate"] == _share(known["partial"], sold[kind]), kind
            assert row["refund_rate_amount"] == _share(known["amount"], again["charged"]), kind
        # A $3 partial refund does not make the downsell "refunded".
        assert (
            rates["downsell"]["refund_rate"] == 0 and rates["downsell"]["partial_refund_rate"] == 1
        )
        assert rates["upsell"]["refund_rate"] == 1

        # Takes are paid lines: e's ticked bump and d's abandoned upsell are not takes.
        c = w.catalog
        takes = {
            r["offer"]: (r["offered"], r["accepted"], r["taken"])
            for r in selectors.take_rates(MetricFilter(), by="offer")
        }
        assert takes == {
            c["bump"].pk: (6, 2, 2),
            c["upsell"].pk: (6, 2, 1),
            c["downsell"].pk: (4, 1, 1),
            c["cross_sell"].pk: (1, 1, 1),
        }

        # "Direct" is a filter value of its own: c, d and h came without a source.
        [direct] = selectors.order_value(MetricFilter(source=""))
        assert direct["orders"] == 3 and (direct["sessions"], direct["visitors"]) == (3, 3)
        assert _recomputed_traffic("") == (3, 3)
        by_source = {
            r["source"]: r["taken"] for r in selectors.take_rates(MetricFilter(), by="source")
        }
        assert by_source == {"(direct)": 1, "ads": 1, "ig": 3}  # c's bump; b's downsell; a's 2, g's

    def test_each_read_model_equals_its_direct_oracle_on_the_workload(self, workload):
        rollups_refresh()
        for f in _filters(workload):
            assert_figures_equal_their_oracles(f)
        # The oracle is not trivially empty on this data.
        assert len(selectors.refund_rates_direct(MetricFilter(), by="offer")) == 5

    def test_the_dashboard_its_csv_and_the_api_show_the_same_figures(
        self,
        workload,
        owner_client,  # noqa: F811
    ):
        api = Client(
            HTTP_HOST=HOST,
            HTTP_AUTHORIZATION="Bearer "
            + api_key_create(name="reader", scope=ApiKey.Scope.READ).token,
        )
        today = timezone.now().astimezone(dt.UTC).date()
        tomorrow = today + dt.timedelta(days=1)
        day = {"start": today.isoformat(), "end": tomorrow.isoformat()}
        api_day = {"start": f"{today}T00:00:00Z", "end": f"{tomorrow}T00:00:00Z"}
        for dash_params, api_params in [
            ({}, {}),
            (day, api_day),
            ({"source": "(direct)"}, {"source": "(direct)"}),
            ({**day, "source": "ig"}, {**api_day, "source": "ig"}),
        ]:
            # Nothing refreshed the read models since the workload: the API refreshes before it
            # reads, as the dashboard does.
            from_api = api.get("/api/v1/metrics/order-value/", api_params)
            assert from_api.status_code == 200, from_api.content
            page = owner_client.get("/admin/analytics/dashboard/", dash_params)
            assert page.status_code == 200
            traffic_api = api.get("/api/v1/metrics/traffic/", api_params).json()
            [traffic_csv] = _csv(owner_client, "traffic", **dash_params)
            [traffic_page] = page.context["data"]["traffic"]
            assert (
                {k: str(v) for k, v in traffic_api.items()}
                == traffic_csv
                == {k: str(v) for k, v in traffic_page.items()}
            )
            [on_page] = page.context["data"]["order_value"]
            [in_csv] = _csv(owner_client, "order_value", **dash_params)
            [in_api] = from_api.json()
            for figure in (
                "orders",
                "sessions",
                "visitors",
                "gross",
                "net",
                "revenue_per_session",
                "net_revenue_per_session",
                "revenue_per_visitor",
            ):
                assert _text(on_page[figure]) == in_csv[figure] == _text(in_api[figure]), figure
            refunds_api = api.get(
                "/api/v1/metrics/refund-rates/", {**api_params, "by": "kind"}
            ).json()
            refunds_csv = _csv(owner_client, "refunds_kind", **dash_params)
            refunds_page = page.context["data"]["refunds_kind"]
            assert (
                [r["kind"] for r in refunds_api]
                == [r["kind"] for r in refunds_csv]
                == [r["kind"] for r in refunds_page]
            )
            for a, c, p in zip(refunds_api, refunds_csv, refunds_page, strict=True):
                for figure in (
                    "sold",
                    "refunded_lines",
                    "partially_refunded_lines",
                    "refund_rate",
                    "refund_rate_amount",
                    "refunded_amount",
                ):
                    assert _text(p[figure]) == c[figure] == _text(a[figure]), (a["kind"], figure)
            funnel_api = api.get("/api/v1/metrics/funnel/", api_params).json()
            assert [(r["step"], str(r["events"]), str(r["visitors"])) for r in funnel_api] == [
                (r["step"], r["events"], r["visitors"])
                for r in _csv(owner_client, "funnel", **dash_params)
            ]
            takes_api = api.get("/api/v1/metrics/take-rates/", api_params).json()
            assert [(str(r["offer"]), str(r["taken"]), _text(r["rate"])) for r in takes_api] == [
                (r["offer"], r["taken"], r["rate"])
                for r in _csv(owner_client, "take_rates_offer", **dash_params)
            ]
        # The figures are the workload's: six paid orders over nine sessions; three direct.
        everything = api.get("/api/v1/metrics/order-value/").json()[0]
        direct = api.get("/api/v1/metrics/order-value/", {"source": "(direct)"}).json()[0]
        assert (everything["orders"], everything["sessions"], direct["orders"]) == (6, 9, 3)
        page = owner_client.get("/admin/analytics/dashboard/")
        assert 'href="/admin/analytics/metrics/"' in page.content.decode()
        glossary = owner_client.get("/admin/analytics/metrics/").content.decode()
        assert "revenue per session" in glossary.lower() and "[start, end)" in glossary


def _filters(w: Workload) -> list[MetricFilter]:
    today = timezone.now().astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    tomorrow = today + dt.timedelta(days=1)
    c = w.catalog
    return [
        MetricFilter(),
        MetricFilter(source="ig"),
        MetricFilter(source=""),
        MetricFilter(start=today, end=tomorrow),
        MetricFilter(end=tomorrow, source="ads"),
        MetricFilter(start=today - dt.timedelta(days=1), end=today),  # nothing in it
        MetricFilter(start=timezone.now() - dt.timedelta(hours=1), end=timezone.now()),
        MetricFilter(offer_id=c["upsell"].pk),
        MetricFilter(offer_id=c["bump"].pk, source=""),
        MetricFilter(product_id=c["core"].pk),
    ]


def _csv(client: Client, export: str, **params) -> list[dict[str, str]]:
    response = client.get("/admin/analytics/dashboard/", {**params, "export": export})
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def _text(value) -> str:
    return "" if value is None else str(value)


def test_a_refund_spike_on_an_upsell_made_through_the_api_pauses_it(tenant, stripe_api_base):
    core, bump, upsell, downsell = make_catalog()
    w = Workload(catalog={}, api_key=api_key_create(name="w", scope=ApiKey.Scope.WRITE).token)
    lines = []
    for n in range(4):
        client = visitor(f"buyer{n}", 40 + n, "ig")
        order = buy(client, email=f"spike{n}@example.com")
        client.post(f"/o/{order.token}/offer/accept", {"token": offer_token(client, order)})
        lines.append(OrderLine.objects.get(order=order, kind="upsell"))
    policy = GuardrailPolicy(min_sold=4)
    assert offer_guardrails_enforce(policy=policy) == []  # sold, nothing refunded
    for line in lines[:2]:
        api_refund(w, line, line.total_amount, f"spike-{line.pk}")
    assert offer_guardrails_enforce(policy=policy) == [upsell.pk]
    upsell.refresh_from_db()
    assert upsell.status == Offer.Status.PAUSED
    assert "50.0% of this offer's sales were refunded" in upsell.paused_reason
