"""Experiments: one thing at a time, deterministic sticky assignment, a no-offer control."""

from collections import Counter
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from analytics.experiments import experiment_report
from analytics.models import CONTROL_ARM, Assignment, Experiment
from audit.services import Actor
from offers.experiments import (
    experiment_arm_for,
    experiment_assign,
    experiment_start,
    offer_present,
)
from offers.models import OfferKind
from storefront.models import Customer
from tests.concurrency import in_threads
from tests.factories import OfferFactory, ProductFactory
from tests.orders import at, event, ledger, make_order


@pytest.fixture
def offer(tenant):
    return OfferFactory(kind=OfferKind.UPSELL, trigger_product=ProductFactory(), price_amount=2700)


def _experiment(offer, **kw):
    defaults = dict(
        offer_id=offer.pk,
        name="Headline test",
        kind="creative",
        variants={"a": {"headline": "Complete your kit"}, "b": {"headline": "Add the workbook"}},
    )
    defaults.update(kw)
    return Experiment.objects.create(**defaults)


def test_an_experiment_may_not_change_creative_and_structure_at_once(offer):
    with pytest.raises(ValidationError, match="one thing at a time"):
        _experiment(offer, variants={"a": {"headline": "x"}, "b": {"price_amount": 1900}})
    with pytest.raises(ValidationError, match="at least two arms"):
        _experiment(offer, variants={"a": {"headline": "x"}})
    with pytest.raises(ValidationError, match="reserved"):
        _experiment(offer, variants={"a": {}, "control": {}})
    structural = _experiment(
        offer,
        kind="structural",
        control_no_offer=True,
        variants={"cheaper": {"price_amount": 1900}},
    )
    assert structural.arms == [CONTROL_ARM, "cheaper"]


def test_assignment_is_deterministic_and_sticky_across_visits(offer):
    experiment = _experiment(offer)
    arms = {
        key: experiment_assign(experiment=experiment, visitor_key=key)
        for key in (f"visitor-{i}" for i in range(200))
    }
    # Same hash on a fresh object: the arm depends only on experiment id and visitor key.
    again = Experiment.objects.get(pk=experiment.pk)
    assert all(
        experiment_arm_for(experiment=again, visitor_key=k) == arm for k, arm in arms.items()
    )
    assert 70 < Counter(arms.values())["a"] < 130  # roughly half each
    # Sticky even if the creator edits the arms later: the stored row wins.
    Experiment.objects.filter(pk=experiment.pk).update(
        variants={"a": {"headline": "x"}, "b": {"headline": "y"}, "c": {"headline": "z"}}
    )
    again.refresh_from_db()
    assert all(experiment_assign(experiment=again, visitor_key=k) == arm for k, arm in arms.items())
    assert Assignment.objects.filter(experiment=experiment).count() == 200


def test_the_database_refuses_a_second_assignment_for_one_visitor(offer):
    experiment = _experiment(offer)
    experiment_assign(experiment=experiment, visitor_key="v1")
    with pytest.raises(IntegrityError):
        Assignment.objects.create(experiment=experiment, visitor_key="v1", variant="b")


def test_concurrent_first_visits_collapse_to_one_assignment(live_tenant):
    offer = OfferFactory(kind=OfferKind.UPSELL, trigger_product=ProductFactory(), price_amount=2700)
    experiment = _experiment(offer)
    results, errors = in_threads(
        6,
        lambda: experiment_assign(experiment=experiment, visitor_key="same-buyer"),
        tenant=live_tenant,
    )
    assert errors == [] and len(results) == 6 and len(set(results)) == 1
    assert Assignment.objects.filter(experiment=experiment).count() == 1


def test_control_buyers_never_see_the_offer(offer):
    experiment = _experiment(
        offer,
        kind="structural",
        control_no_offer=True,
        variants={"cheaper": {"price_amount": 1900}},
    )
    experiment_start(actor=Actor.system("test"), experiment=experiment)
    seen = {}
    for i in range(100):
        key = f"buyer-{i}"
        first = offer_present(offer=offer, visitor_key=key)
        for _ in range(3):  # later visits
            later = offer_present(offer=offer, visitor_key=key)
            assert (later.offer is None) == (first.offer is None) and later.variant == first.variant
        seen[key] = first
    control = [p for p in seen.values() if p.variant == CONTROL_ARM]
    treated = [p for p in seen.values() if p.variant == "cheaper"]
    assert control and treated
    assert all(p.offer is None for p in control)
    assert all(p.offer == offer and p.overrides == {"price_amount": 1900} for p in treated)


def test_no_running_experiment_means_the_plain_offer(offer):
    _experiment(offer)  # a draft
    shown = offer_present(offer=offer, visitor_key="v1")
    assert (shown.offer, shown.variant, shown.overrides) == (offer, "", {})


def test_experiment_report_is_underpowered_early_and_reports_refunds_and_repeats(offer):
    experiment = _experiment(
        offer, baseline_rate=Decimal("0.10"), min_detectable_effect=Decimal("0.02")
    )
    experiment_start(actor=Actor.system("test"), experiment=experiment)
    experiment.refresh_from_db()
    Experiment.objects.filter(pk=experiment.pk).update(started_at=at(1, 1))
    experiment.refresh_from_db()
    customer = Customer.objects.create(email="x@buyer.example")
    by_arm = {}
    for i in range(40):
        key = f"v{i}"
        by_arm.setdefault(experiment_assign(experiment=experiment, visitor_key=key), []).append(key)
    # In arm b: two visitors buy and take the upsell; one of them is refunded.
    took = by_arm["b"][:2]
    for j, key in enumerate(took):
        order, (_, line) = make_order(
            customer,
            visitor=key,
            source="ig",
            paid_at=at(1, 5),
            lines=[
                ("core", offer.trigger_product, None, 4900),
                ("upsell", offer.product, offer, 2700),
            ],
        )
        event("upsell_accepted", at(1, 5), order, offer_id=offer.pk)
        if j == 0:
            ledger(line, "refund", 2700, at(1, 9))
    report = experiment_report(experiment)
    assert report.planned_per_arm == 3841
    assert report.verdict == "underpowered"
    assert report.metric == "take rate"
    b = next(a for a in report.arms if a["arm"] == "b")
    assert (b["visitors"], b["takers"], b["buyers"]) == (len(by_arm["b"]), 2, 2)
    assert b["refund_rate"] == Decimal("0.5000") and b["net"] == 2 * 7600 - 2700
