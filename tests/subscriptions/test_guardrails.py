"""The pricing guardrails judge a subscription or payment plan by its first payment (what the
buyer pays today) and name the plan's total."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from core.money import Money
from offers.models import Offer, OfferKind
from offers.services import offer_price_check, price_terms
from subscriptions.models import Plan
from tests.factories import ProductFactory


def _plan(product, **kw):
    defaults = {"kind": "subscription", "interval_unit": "month"}
    return Plan.objects.create(product=product, **{**defaults, **kw})


def test_a_monthly_bump_is_judged_by_its_first_payment_and_named_by_its_years_total(tenant):
    core = ProductFactory(price_amount=4900)
    community = ProductFactory(price_amount=900)
    _plan(community)
    assert price_terms(community, Money(900, "USD")) == (
        Money(900, "USD"),
        Money(10800, "USD"),
        "its first year",
    )
    check = offer_price_check(
        offer_price=Money(900, "USD"), core_price=core.price, product=community, trigger=core
    )
    assert check.refusal == "" and check.percent_of_core == Decimal("18.4")  # today: in range
    assert "$108.00" in check.warning and "first year" in check.warning


def test_a_trial_with_a_setup_fee_is_judged_by_the_fee(tenant):
    core = ProductFactory(price_amount=4900)
    club = ProductFactory(price_amount=9900)
    _plan(club, trial_days=14, setup_fee_amount=900)
    check = offer_price_check(
        offer_price=Money(9900, "USD"), core_price=core.price, product=club, trigger=core
    )
    assert check.refusal == "" and check.percent_of_core == Decimal("18.4")  # 9.00 of 49.00
    # Without the plan the same price is refused (202 % of the cart).
    assert offer_price_check(offer_price=Money(9900, "USD"), core_price=core.price).refusal


def test_a_payment_plan_totals_its_instalments(tenant):
    course = ProductFactory(price_amount=3300)
    _plan(course, kind="instalments", instalments=3)
    first, total, covers = price_terms(course, Money(3300, "USD"))
    assert (first.amount, total.amount, covers) == (3300, 9900, "3 instalments")


def test_upgrade_to_annual_needs_the_explicit_override(tenant):
    monthly = ProductFactory(price_amount=1900)
    annual = ProductFactory(price_amount=19000)
    _plan(monthly)
    _plan(annual, interval_unit="year")
    offer = Offer(
        kind=OfferKind.UPSELL,
        trigger_product=monthly,
        product=annual,
        price_amount=19000,
        headline="Go annual",
        benefit="Two months free",
    )
    with pytest.raises(ValidationError) as refused:
        offer.full_clean()
    assert "price_amount" in refused.value.message_dict
    offer.allow_high_price = True
    offer.full_clean()
