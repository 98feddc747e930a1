"""Partner API: the ladder and products, offers of every kind with caps, experiments with their
sample size, metrics, the audit rows each write leaves, and the docs page under our CSP."""

import re

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders

from analytics.models import Experiment
from analytics.services import event_append
from audit.models import AuditEntry
from offers.models import Offer
from partners.models import ApiKey
from storefront.models import Product
from tests.api.conftest import paid_order
from tests.factories import OfferFactory, ProductFactory


def _json(api, method, url, body=None, **extra):
    return getattr(api, method)(url, body, content_type="application/json", **extra)


def _key_of(token: str) -> ApiKey:
    return ApiKey.objects.get(prefix=token.split("_")[1])


def _audit(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("pk"))


def test_a_product_created_and_repriced_through_the_api_is_audited_as_the_key(api_for, write_key):
    api = api_for("t1.localhost", write_key)
    created = _json(
        api,
        "post",
        "/api/v1/products/",
        {
            "slug": "workbook",
            "name": "Workbook",
            "price_amount": 1900,
            "currency": "EUR",
            "tier": "companion",
            "status": "active",
        },
    )
    assert created.status_code == 201, created.content
    product = Product.objects.get(slug="workbook")
    assert (product.price_amount, product.currency, product.tier) == (1900, "EUR", "companion")
    repriced = _json(api, "patch", f"/api/v1/products/{product.pk}/", {"price_amount": 2400})
    assert repriced.status_code == 200 and repriced.json()["price_amount"] == 2400

    key = _key_of(write_key)
    [added] = _audit("storefront.product.add")
    [changed] = _audit("storefront.product.change")
    for entry in (added, changed):
        assert (entry.actor_kind, entry.actor_id) == ("api_key", str(key.pk))
        assert key.prefix in entry.actor_label and entry.object_id == str(product.pk)
    assert changed.changes == {"price_amount": [1900, 2400]}


def test_a_product_update_that_changes_nothing_leaves_no_audit_row(api_for, write_key):
    product = ProductFactory(price_amount=4900)
    response = _json(
        api_for("t1.localhost", write_key),
        "patch",
        f"/api/v1/products/{product.pk}/",
        {"price_amount": 4900},
    )
    assert response.status_code == 200
    assert not _audit("storefront.product.change")


def test_a_product_refuses_a_taken_slug_a_low_anchor_and_a_new_currency(api_for, write_key):
    taken = ProductFactory(slug="taken", price_amount=5000, currency="USD")
    api = api_for("t1.localhost", write_key)
    dup = _json(
        api, "post", "/api/v1/products/", {"slug": "taken", "name": "x", "price_amount": 100}
    )
    assert dup.status_code == 400 and "slug" in dup.json()["error"]["fields"]
    anchor = _json(api, "patch", f"/api/v1/products/{taken.pk}/", {"anchor_amount": 4000})
    assert anchor.status_code == 400 and "anchor_amount" in anchor.json()["error"]["fields"]
    currency = _json(api, "patch", f"/api/v1/products/{taken.pk}/", {"currency": "EUR"})
    assert currency.status_code == 400 and "currency" in currency.json()["error"]["fields"]
    taken.refresh_from_db()
    assert (taken.anchor_amount, taken.currency) == (None, "USD")
    assert not AuditEntry.objects.exists()


def test_a_read_key_cannot_create_change_or_reorder_products(api_for, read_key):
    product = ProductFactory(price_amount=4900)
    api = api_for("t1.localhost", read_key)
    answers = [
        _json(api, "post", "/api/v1/products/", {"slug": "x", "name": "x", "price_amount": 1}),
        _json(api, "patch", f"/api/v1/products/{product.pk}/", {"price_amount": 1}),
        _json(api, "post", "/api/v1/products/reorder/", {"product_ids": [product.pk]}),
    ]
    assert [a.status_code for a in answers] == [403, 403, 403]
    product.refresh_from_db()
    assert product.price_amount == 4900


def test_the_ladder_is_reordered_in_one_call_and_the_list_follows_it(api_for, write_key):
    entry, companion, premium = (
        ProductFactory(slug=s, ladder_position=i)
        for i, s in enumerate(["entry", "companion", "premium"], 1)
    )
    api = api_for("t1.localhost", write_key)
    moved = _json(
        api,
        "post",
        "/api/v1/products/reorder/",
        {"product_ids": [premium.pk, entry.pk, companion.pk]},
    )
    assert moved.status_code == 200, moved.content
    assert [p["slug"] for p in moved.json()] == ["premium", "entry", "companion"]
    listed = api.get("/api/v1/products/").json()["results"]
    assert [(p["slug"], p["ladder_position"]) for p in listed] == [
        ("premium", 1),
        ("entry", 2),
        ("companion", 3),
    ]
    [entry_row] = _audit("storefront.product.reorder")
    assert entry_row.actor_kind == "api_key"
    assert entry_row.changes[str(premium.pk)] == [3, 1]


def test_a_reorder_that_leaves_out_a_product_is_refused_and_moves_nothing(api_for, write_key):
    a, b = ProductFactory(ladder_position=1), ProductFactory(ladder_position=2)
    api = api_for("t1.localhost", write_key)
    for ids in ([b.pk], [b.pk, a.pk, a.pk], [b.pk, a.pk, 10**12]):
        refused = _json(api, "post", "/api/v1/products/reorder/", {"product_ids": ids})
        assert refused.status_code == 400, ids
        assert refused.json()["error"]["code"] == "ladder_incomplete"
    assert list(Product.objects.order_by("ladder_position").values_list("pk", flat=True)) == [
        a.pk,
        b.pk,
    ]
    assert not _audit("storefront.product.reorder")


def test_one_product_moves_on_the_ladder_with_a_patch_of_its_position(api_for, write_key):
    a = ProductFactory(slug="a", ladder_position=1)
    ProductFactory(slug="b", ladder_position=2)
    api = api_for("t1.localhost", write_key)
    assert (
        _json(api, "patch", f"/api/v1/products/{a.pk}/", {"ladder_position": 3}).status_code == 200
    )
    assert [p["slug"] for p in api.get("/api/v1/products/").json()["results"]] == ["b", "a"]


def test_offer_create_update_pause_and_resume_are_each_audited_as_the_key(api_for, write_key):
    core = ProductFactory(price_amount=5000)
    addon = ProductFactory(price_amount=1500)
    api = api_for("t1.localhost", write_key)
    created = _json(
        api,
        "post",
        "/api/v1/offers/",
        {
            "kind": "bump",
            "trigger_product_id": core.pk,
            "product_id": addon.pk,
            "price_amount": 900,
            "headline": "Presets",
            "benefit": "Edit faster",
        },
    )
    assert created.status_code == 201, created.content
    offer_id = created.json()["id"]
    assert (
        _json(api, "patch", f"/api/v1/offers/{offer_id}/", {"price_amount": 1200}).status_code
        == 200
    )
    assert (
        _json(
            api, "post", f"/api/v1/offers/{offer_id}/pause/", {"reason": "refunds up"}
        ).status_code
        == 200
    )
    assert _json(api, "post", f"/api/v1/offers/{offer_id}/resume/").status_code == 200

    key = _key_of(write_key)
    actions = list(
        AuditEntry.objects.filter(object_id=str(offer_id))
        .order_by("pk")
        .values_list("action", "actor_kind", "actor_id")
    )
    assert actions == [
        (f"offers.offer.{verb}", "api_key", str(key.pk))
        for verb in ("add", "change", "pause", "resume")
    ]
    change = _audit("offers.offer.change")[0]
    assert change.changes == {"price_amount": [900, 1200]}
    assert _audit("offers.offer.pause")[0].changes["paused_reason"] == ["", "refunds up"]


def test_pausing_an_already_paused_offer_adds_no_second_audit_row(api_for, write_key):
    offer = OfferFactory()
    api = api_for("t1.localhost", write_key)
    for _ in range(2):
        assert _json(api, "post", f"/api/v1/offers/{offer.pk}/pause/").status_code == 200
    assert len(_audit("offers.offer.pause")) == 1


def test_the_per_buyer_cap_is_shown_and_can_be_changed(api_for, write_key):
    offer = OfferFactory(kind="upsell", price_amount=900)
    api = api_for("t1.localhost", write_key)
    assert api.get(f"/api/v1/offers/{offer.pk}/").json()["customer_cap_hours"] == 24
    changed = _json(api, "patch", f"/api/v1/offers/{offer.pk}/", {"customer_cap_hours": 72})
    assert changed.status_code == 200 and changed.json()["customer_cap_hours"] == 72
    offer.refresh_from_db()
    assert offer.customer_cap_hours == 72
    bad = _json(api, "patch", f"/api/v1/offers/{offer.pk}/", {"customer_cap_hours": -1})
    assert bad.status_code == 400 and "customer_cap_hours" in bad.json()["error"]["fields"]


def test_downsells_and_cross_sells_are_created_and_listed_by_kind(api_for, write_key):
    core = ProductFactory(price_amount=10000)
    addon = ProductFactory(price_amount=3000)
    upsell = OfferFactory(kind="upsell", trigger_product=core, product=addon, price_amount=2500)
    api = api_for("t1.localhost", write_key)
    down = _json(
        api,
        "post",
        "/api/v1/offers/",
        {
            "kind": "downsell",
            "parent_id": upsell.pk,
            "trigger_product_id": core.pk,
            "product_id": addon.pk,
            "price_amount": 1500,
            "headline": "Lite",
            "benefit": "b",
        },
    )
    assert down.status_code == 201, down.content
    assert down.json()["parent_id"] == upsell.pk
    cross = _json(
        api,
        "post",
        "/api/v1/offers/",
        {
            "kind": "cross_sell",
            "trigger_product_id": core.pk,
            "product_id": addon.pk,
            "price_amount": 2000,
            "headline": "Next step",
            "benefit": "b",
            "followup_delays_hours": [24, 72],
        },
    )
    assert cross.status_code == 201, cross.content
    assert cross.json()["followup_delays_hours"] == [24, 72]
    listed = api.get("/api/v1/offers/", {"kind": "cross_sell"}).json()["results"]
    assert [o["id"] for o in listed] == [cross.json()["id"]]
    assert api.get("/api/v1/offers/", {"kind": "downsell"}).json()["count"] == 1


def test_a_downsell_must_follow_its_upsells_product_and_cost_less(api_for, write_key):
    core, other = ProductFactory(price_amount=10000), ProductFactory(price_amount=10000)
    addon = ProductFactory(price_amount=3000)
    upsell = OfferFactory(kind="upsell", trigger_product=core, product=addon, price_amount=2500)
    api = api_for("t1.localhost", write_key)
    body = {
        "kind": "downsell",
        "parent_id": upsell.pk,
        "product_id": addon.pk,
        "headline": "h",
        "benefit": "b",
    }
    elsewhere = _json(
        api,
        "post",
        "/api/v1/offers/",
        body | {"trigger_product_id": other.pk, "price_amount": 1500},
    )
    assert elsewhere.status_code == 400 and "parent_id" in elsewhere.json()["error"]["fields"]
    dearer = _json(
        api, "post", "/api/v1/offers/", body | {"trigger_product_id": core.pk, "price_amount": 2500}
    )
    assert dearer.status_code == 400 and "price_amount" in dearer.json()["error"]["fields"]
    assert not Offer.objects.filter(kind="downsell").exists()


def _experiment_body(offer, **extra):
    return {
        "offer_id": offer.pk,
        "name": "Headline test",
        "kind": "creative",
        "variants": {"a": {"headline": "Complete your kit"}, "b": {"headline": "Add the workbook"}},
    } | extra


def test_an_experiment_shows_the_sample_size_it_needs_before_it_starts(api_for, write_key):
    from analytics import stats

    offer = OfferFactory()
    api = api_for("t1.localhost", write_key)
    created = _json(
        api,
        "post",
        "/api/v1/experiments/",
        _experiment_body(
            offer, baseline_rate="0.1000", min_detectable_effect="0.0200", control_no_offer=True
        ),
    )
    assert created.status_code == 201, created.content
    body = created.json()
    per_arm = stats.sample_size_two_proportions(p1=0.10, p2=0.12, alpha=0.05, power=0.8)
    assert body["status"] == "draft"
    assert body["arms"] == ["control", "a", "b"]
    assert body["sample_size"] == {"per_arm": per_arm, "arms": 3, "total": 3 * per_arm}
    assert 3000 < per_arm < 5000  # ≈3,839 visitors per arm for 10 % → 12 %
    [added] = _audit("analytics.experiment.add")
    assert added.actor_kind == "api_key"


def test_an_experiment_starts_once_stops_once_and_one_runs_per_offer(api_for, write_key):
    offer = OfferFactory()
    api = api_for("t1.localhost", write_key)
    first = _json(api, "post", "/api/v1/experiments/", _experiment_body(offer)).json()["id"]
    second = _json(api, "post", "/api/v1/experiments/", _experiment_body(offer)).json()["id"]
    started = _json(api, "post", f"/api/v1/experiments/{first}/start/")
    assert started.status_code == 200 and started.json()["status"] == "running"
    again = _json(api, "post", f"/api/v1/experiments/{first}/start/")
    assert again.status_code == 409 and again.json()["error"]["code"] == "experiment_not_draft"
    rival = _json(api, "post", f"/api/v1/experiments/{second}/start/")
    assert rival.status_code == 409 and rival.json()["error"]["code"] == "experiment_conflict"
    stopped = _json(api, "post", f"/api/v1/experiments/{first}/stop/")
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    assert _json(api, "post", f"/api/v1/experiments/{first}/stop/").status_code == 409
    [start] = _audit("analytics.experiment.start")
    assert start.changes["planned_per_arm"] == started.json()["sample_size"]["per_arm"]
    assert len(_audit("analytics.experiment.stop")) == 1
    running = api.get("/api/v1/experiments/", {"status": "running"}).json()["results"]
    assert running == []


def test_an_experiment_that_mixes_creative_and_structural_fields_is_refused(api_for, write_key):
    offer = OfferFactory()
    api = api_for("t1.localhost", write_key)
    mixed = _json(
        api,
        "post",
        "/api/v1/experiments/",
        _experiment_body(offer, variants={"a": {"headline": "x"}, "b": {"price_amount": 500}}),
    )
    assert mixed.status_code == 400
    assert any("one thing at a time" in m for m in mixed.json()["error"]["fields"]["variants"])
    bad_price = _json(
        api,
        "post",
        "/api/v1/experiments/",
        _experiment_body(
            offer, kind="structural", variants={"a": {"price_amount": "cheap"}, "b": {}}
        ),
    )
    assert bad_price.status_code == 400 and "variants" in bad_price.json()["error"]["fields"]
    unknown = _json(api, "post", "/api/v1/experiments/", _experiment_body(offer, offer_id=10**12))
    assert unknown.status_code == 400 and "offer_id" in unknown.json()["error"]["fields"]
    assert not Experiment.objects.exists()


def test_experiment_results_report_each_arm_and_the_sequential_verdict(api_for, read_key):
    offer = OfferFactory()
    experiment = Experiment.objects.create(
        offer_id=offer.pk, name="t", kind="creative", variants={"a": {}, "b": {}}
    )
    response = api_for("t1.localhost", read_key).get(
        f"/api/v1/experiments/{experiment.pk}/results/"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert [a["arm"] for a in body["arms"]] == ["a", "b"]
    assert body["metric"] == "take rate" and body["verdict"] == "underpowered"
    assert body["sequential"]["decided"] is False


def test_metrics_answer_with_the_selectors_figures_and_honour_the_filters(api_for, read_key):
    for source in ("newsletter", "newsletter", "ads"):
        event_append("upsell_failed", source=source, reason="card_declined")
    api = api_for("t1.localhost", read_key)
    everything = api.get("/api/v1/metrics/reliability/")
    assert everything.status_code == 200, everything.content
    assert everything.json() == [{"event": "upsell_failed", "reason": "card_declined", "events": 3}]
    newsletter = api.get("/api/v1/metrics/reliability/", {"source": "newsletter"}).json()
    assert [row["events"] for row in newsletter] == [2]
    later = api.get("/api/v1/metrics/reliability/", {"start": "2999-01-01T00:00:00Z"}).json()
    assert later == []
    for path in (
        "funnel",
        "order-value",
        "take-rates",
        "refund-rates",
        "cohort-ltv",
        "time-to-charge",
        "subscriptions",
    ):
        assert api.get(f"/api/v1/metrics/{path}/").status_code == 200, path
    assert api.get("/api/v1/metrics/take-rates/", {"by": "source"}).status_code == 200
    for bad in ({"start": "soon"}, {"offer_id": "0"}, {"by": "color"}, {"source": "x" * 101}):
        path = "take-rates" if "by" in bad else "funnel"
        refused = api.get(f"/api/v1/metrics/{path}/", bad)
        assert refused.status_code == 400, bad
        assert set(bad) <= set(refused.json()["error"]["fields"]), bad


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/customers/",
        "/api/v1/orders/",
        "/api/v1/events/",
        "/api/v1/products/",
        "/api/v1/offers/",
        "/api/v1/experiments/",
    ],
)
def test_nonsense_in_any_query_parameter_is_a_400_with_the_error_body_never_a_500(
    api_for, read_key, path
):
    api = api_for("t1.localhost", read_key)
    schema = api.get("/api/v1/schema/", {"format": "json"}).json()
    names = [
        p["name"] for p in schema["paths"][path]["get"].get("parameters", []) if p["in"] == "query"
    ]
    assert names
    for name in names:
        for value in ("\x00", ["1", "2"], "0001-01-01T00:00:00+05:00\x00", "9" * 40):
            response = api.get(path, {name: value})
            assert response.status_code in (200, 400, 404), (name, value, response.content)
            if response.status_code != 200:
                assert response.json()["error"]["code"], (name, value)
        assert api.get(path, {name: "\x00"}).status_code in (200, 400)


@pytest.mark.parametrize(
    "value", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "1000-01-01T00:00:00Z"]
)
def test_date_filters_take_any_iso_date_time_the_schema_allows(api_for, read_key, value):
    api = api_for("t1.localhost", read_key)
    for path, name in [
        ("/api/v1/customers/", "created_after"),
        ("/api/v1/orders/", "created_before"),
        ("/api/v1/events/", "occurred_after"),
    ]:
        response = api.get(path, {name: value})
        assert response.status_code == 200, (path, value, response.content)


def test_paging_parameters_are_integers_given_once_within_their_bounds(api_for, read_key):
    api = api_for("t1.localhost", read_key)
    for query in (
        "limit=0",
        "limit=201",
        "limit=x",
        "offset=-1",
        "offset=1000000001",
        "limit=5&limit=6",
        "created_after=",
        "page_size=0",
    ):
        path = "/api/v1/events/" if query.startswith("page_size") else "/api/v1/customers/"
        response = api.get(f"{path}?{query}")
        assert response.status_code == 400, (query, response.content)
        assert response.json()["error"]["code"] == "validation_error"
    assert api.get("/api/v1/customers/?limit=200&offset=1000000000").status_code == 200


@pytest.mark.gateway
def test_a_refund_through_the_api_is_audited_as_the_key_once_even_when_replayed(
    api_for, write_key, stripe_api_base
):
    order = paid_order()
    line = order.lines.get()
    api = api_for("t1.localhost", write_key)
    for _ in range(2):
        response = _json(
            api,
            "post",
            f"/api/v1/orders/{order.pk}/refunds/",
            {"line_id": line.pk, "amount": 1000, "reason": "asked"},
            HTTP_IDEMPOTENCY_KEY="audit-1",
        )
        assert response.status_code == 201, response.content
    [entry] = _audit("payments.refund.issue")
    assert (entry.actor_kind, entry.actor_id) == ("api_key", str(_key_of(write_key).pk))
    assert entry.object_id == str(response.json()["id"])
    assert entry.changes["amount"] == [None, 1000] and entry.changes["reason"] == "asked"


def test_the_docs_page_loads_swagger_ui_from_our_own_static_files_under_the_csp(api_for, tenant):
    api = api_for("t1.localhost", None)
    page = api.get("/api/v1/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    csp = page["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1]
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    for attrs, _body in scripts:
        src = re.search(r'src="([^"]+)"', attrs)
        if src is None:  # an inline script runs only with this response's nonce
            assert f'nonce="{nonce}"' in attrs, attrs
            continue
        url = src.group(1)
        assert url.startswith("/"), url  # same origin: no CDN
        if url.startswith(settings.STATIC_URL):  # served by WhiteNoise after collectstatic
            assert finders.find(url.removeprefix(settings.STATIC_URL).split("?")[0]), url
        else:
            assert api.get(url).status_code == 200, url
    assert "cdn" not in html.lower()
    assert "<style" not in html and " style=" not in html  # style-src is 'self' only
    assert "swagger-ui" in html


def test_a_slug_or_currency_with_a_trailing_newline_is_refused_not_trimmed(api_for, write_key):
    api = api_for("t1.localhost", write_key)
    for field, value in (("slug", "workbook\n"), ("currency", "EUR\n"), ("slug", " workbook")):
        body = {"slug": "workbook", "name": "Workbook", "price_amount": 1900} | {field: value}
        response = _json(api, "post", "/api/v1/products/", body)
        assert response.status_code == 400, (field, value, response.content)
        assert field in response.json()["error"]["fields"]
    assert not Product.objects.exists()
