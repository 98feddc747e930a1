"""Experiments in the buyer flow, through the real views: the bump at checkout and the upsell
after it are shown as the buyer's arm has them, the variant is recorded on the order and on
the offered events, and the no-offer control never sees the offer."""

from decimal import Decimal

import pytest
from django.core import signing
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analytics.experiments import experiment_report
from analytics.models import CONTROL_ARM, Assignment, Event, Experiment
from audit.services import Actor
from offers.experiments import experiment_arm_for, experiment_start
from offers.models import OfferDecision
from storefront.attribution import COOKIE
from storefront.models import Customer, Order
from tests import gateway_helpers as gw
from tests.orders import at, event, ledger, make_order
from tests.storefront.test_checkout_flow import _business_queries
from tests.upsell.helpers import buy, make_catalog

pytestmark = pytest.mark.gateway

HOST = "t1.localhost"


@pytest.fixture
def catalog(tenant):
    return make_catalog(with_downsell=False)


def _running(offer, **fields) -> Experiment:
    experiment = Experiment.objects.create(offer_id=offer.pk, name="test", **fields)
    assert experiment_start(actor=Actor.system("test"), experiment=experiment)
    experiment.refresh_from_db()
    return experiment


def _visitor_in(experiment, arm: str) -> str:
    return next(
        key
        for key in (f"visitor{i:04d}" for i in range(1000))
        if experiment_arm_for(experiment=experiment, visitor_key=key) == arm
    )


def _client_as(client_for, visitor_id: str):
    client = client_for(HOST)
    client.cookies[COOKIE] = signing.dumps(
        {"visitor_id": visitor_id, "source": "ig", "medium": "", "campaign": "", "referrer": ""},
        salt=COOKIE,
    )
    return client


def _start(client, **data):
    payload = {"email": "buyer@example.com", "country": "DE", "region": "", "save_card": "on"}
    payload.update(data)
    return client.post("/checkout/course/start", payload)


def test_a_bump_control_buyer_never_sees_the_bump_and_cannot_add_it(
    catalog, client_for, stripe_api_base
):
    _, bump, _, _ = catalog
    experiment = _running(
        bump, kind="structural", variants={"a": {"price_amount": 500}}, control_no_offer=True
    )
    client = _client_as(client_for, _visitor_in(experiment, CONTROL_ARM))

    page = client.get("/checkout/course/").content.decode()
    assert 'name="bump"' not in page and "Preset pack" not in page
    forged = _start(client, bump=bump.pk, add_bump="on")
    assert forged.status_code == 400 and "not available" in forged.json()["error"]

    started = _start(client)
    assert started.status_code == 200, started.content
    order = Order.objects.get(token=started.json()["order"])
    assert order.variant == CONTROL_ARM
    assert list(order.lines.values_list("kind", flat=True)) == ["core"]
    assert not Event.objects.filter(order_id=order.pk, name="bump_offered").exists()


def test_a_bump_arm_buyer_pays_the_arms_price_and_the_variant_is_recorded(
    catalog, client_for, stripe_api_base
):
    _, bump, _, _ = catalog
    experiment = _running(
        bump, kind="structural", variants={"a": {"price_amount": 500}}, control_no_offer=True
    )
    visitor = _visitor_in(experiment, "a")
    client = _client_as(client_for, visitor)

    page = client.get("/checkout/course/").content.decode()
    assert f'name="bump" value="{bump.pk}"' in page and "$5.00" in page
    quote = client.get(
        "/checkout/course/quote", {"country": "DE", "add_bump": "on", "bump": bump.pk}
    ).json()
    assert quote["total"] == 4900 + 931 + 500 + 95  # the arm's price, 19% VAT on each line
    started = _start(client, bump=bump.pk, add_bump="on")
    assert started.status_code == 200, started.content
    assert started.json()["quote"]["total"] == 4900 + 931 + 500 + 95
    order = Order.objects.get(token=started.json()["order"])
    assert order.variant == "a"
    assert order.lines.get(kind="bump").net_amount == 500
    offered = Event.objects.get(order_id=order.pk, name="bump_offered")
    assert (offered.variant, offered.offer_id) == ("a", bump.pk)
    assert Assignment.objects.get(experiment=experiment, visitor_key=visitor).variant == "a"


def test_the_checkout_post_stays_within_its_query_budget_under_a_running_experiment(
    catalog, client_for, stripe_api_base
):
    _, bump, _, _ = catalog
    experiment = _running(
        bump, kind="structural", variants={"a": {"price_amount": 500}}, control_no_offer=True
    )
    client = _client_as(client_for, _visitor_in(experiment, "a"))
    with CaptureQueriesContext(connection) as queries:
        response = _start(client, bump=bump.pk, add_bump="on")
    assert response.status_code == 200
    business = _business_queries(queries)
    assert len(business) <= 25, "\n".join(q[:110] for q in business)


def test_an_upsell_control_buyer_goes_straight_to_thanks_and_is_never_offered(
    catalog, client_for, stripe_api_base
):
    _, _, upsell, _ = catalog
    experiment = _running(
        upsell,
        kind="creative",
        variants={"a": {"headline": "Finish faster with the masterclass"}},
        control_no_offer=True,
    )
    client = _client_as(client_for, _visitor_in(experiment, CONTROL_ARM))
    order = buy(client, email="control@example.com")

    assert client.get(f"/o/{order.token}/next")["Location"] == f"/o/{order.token}/thanks"
    page = client.get(f"/o/{order.token}/offer")
    assert page.status_code == 302 and page["Location"] == f"/o/{order.token}/thanks"
    assert not OfferDecision.objects.filter(order=order).exists()
    assert not Event.objects.filter(order_id=order.pk, name="upsell_offered").exists()
    assert len(gw.payment_intents()) == 1  # only the checkout's payment


def test_an_upsell_arm_buyer_sees_the_arms_headline_on_every_visit_and_it_is_recorded(
    catalog, client_for, stripe_api_base
):
    _, _, upsell, _ = catalog
    experiment = _running(
        upsell,
        kind="creative",
        variants={"a": {"headline": "Finish faster with the masterclass"}},
        control_no_offer=True,
    )
    client = _client_as(client_for, _visitor_in(experiment, "a"))
    order = buy(client, email="treated@example.com")

    assert client.get(f"/o/{order.token}/next")["Location"] == f"/o/{order.token}/offer"
    for _ in range(2):  # a reload shows the same arm
        html = client.get(f"/o/{order.token}/offer").content.decode()
        assert "Finish faster with the masterclass" in html
        assert "Add the editing masterclass" not in html
    offered = Event.objects.get(order_id=order.pk, name="upsell_offered")
    assert (offered.variant, offered.offer_id) == ("a", upsell.pk)
    order.refresh_from_db()
    assert order.variant == "a"
    decision = OfferDecision.objects.get(order=order)
    assert decision.net_amount == 1200  # a creative test leaves the price alone


def test_a_buyer_without_a_visitor_cookie_is_assigned_by_email(catalog, stripe_api_base):
    from offers.experiments import buyer_key

    assert buyer_key(visitor_id="", email=" Buyer@Example.com ") == "email:buyer@example.com"
    assert buyer_key(visitor_id="abc", email="buyer@example.com") == "abc"
    assert buyer_key(visitor_id="", email="") == ""


def test_experiment_results_report_refunds_chargebacks_and_repeat_purchases_beside_conversion(
    catalog,
):
    _, _, upsell, _ = catalog
    experiment = _running(
        upsell,
        kind="creative",
        variants={"a": {"headline": "Finish faster"}},
        control_no_offer=True,
    )
    Experiment.objects.filter(pk=experiment.pk).update(started_at=at(1, 1))
    experiment.refresh_from_db()
    control = [_visitor_in(experiment, CONTROL_ARM)]
    treated = [_visitor_in(experiment, "a")]
    from offers.experiments import experiment_assign

    for key in control + treated:
        experiment_assign(experiment=experiment, visitor_key=key)
    # Control: one buyer who comes back for a second order (a repeat purchase).
    c = Customer.objects.create(email="c@buyer.example")
    for day in (5, 20):
        make_order(
            c,
            visitor=control[0],
            source="ig",
            paid_at=at(1, day),
            lines=[("core", upsell.trigger_product, None, 4900)],
        )
    # Arm a: one buyer takes the upsell, which is charged back.
    t = Customer.objects.create(email="t@buyer.example")
    order, (_, line) = make_order(
        t,
        visitor=treated[0],
        source="ig",
        paid_at=at(1, 6),
        lines=[
            ("core", upsell.trigger_product, None, 4900),
            ("upsell", upsell.product, upsell, 1200),
        ],
    )
    event("upsell_accepted", at(1, 6), order, offer_id=upsell.pk)
    ledger(line, "chargeback", 1200, at(1, 30))

    report = experiment_report(experiment)
    assert report.metric == "purchase conversion"
    arms = {a["arm"]: a for a in report.arms}
    assert (arms[CONTROL_ARM]["conversion"], arms["a"]["conversion"]) == (
        Decimal("1.0000"),
        Decimal("1.0000"),
    )
    assert arms[CONTROL_ARM]["repeat_rate"] == Decimal("1.0000")
    assert arms[CONTROL_ARM]["refund_rate"] == Decimal("0.0000")
    assert arms["a"]["repeat_rate"] == Decimal("0.0000")
    assert arms["a"]["refund_rate"] == Decimal("1.0000")  # a chargeback counts as a return
    assert (arms["a"]["net"], arms[CONTROL_ARM]["net"]) == (4900, 9800)
    assert arms["a"]["take_rate"] == Decimal("1.0000")
