"""The upsell and follow-up services are packages now; every name their modules offered to
tasks, views, payments' outcome handler and tests is still importable from the old path."""

import importlib

import pytest

OLD_PUBLIC_NAMES = {
    "storefront.services.upsell": [
        "LOOP_ABANDONED",
        "LOOP_GATE_SWEEP",
        "LOOP_RELEASE",
        "POST_PURCHASE",
        "OfferRefused",
        "OfferStep",
        "gates_release_stale",
        "next_step_url",
        "offer_abandon_confirmation",
        "offer_accept",
        "offer_confirm",
        "offer_decline",
        "offer_step",
        "offer_token",
        "offers_flag_abandoned",
        "on_post_purchase_outcome",
        "release_gated_offers",
        "token_max_age",
    ],
    "storefront.services.followups": [
        "ACCEPT_MAX_AGE",
        "DEFAULT_DELAYS_HOURS",
        "LOOP_FOLLOWUPS",
        "MAX_STEPS",
        "FollowUpOffer",
        "FollowUpRefused",
        "Framing",
        "UndeliverableEmail",
        "accept_token",
        "claim_stale_after",
        "customer_unsubscribe",
        "followup_accept",
        "followup_delays",
        "followup_offer_for",
        "followup_offer_view",
        "followup_send",
        "followups_due",
        "followups_schedule",
        "followups_send_due",
        "on_cross_sell_outcome",
        "skip_reason",
        "unsubscribe_token",
    ],
}


@pytest.mark.parametrize("module", sorted(OLD_PUBLIC_NAMES))
def test_every_public_name_of_the_split_service_modules_is_importable_from_its_old_path(module):
    package = importlib.import_module(module)
    missing = [name for name in OLD_PUBLIC_NAMES[module] if not hasattr(package, name)]
    assert missing == []
    assert sorted(package.__all__) == sorted(OLD_PUBLIC_NAMES[module])


def test_a_post_purchase_line_is_added_at_the_frozen_price_and_a_second_one_is_refused(tenant):
    from decimal import Decimal
    from types import SimpleNamespace

    from storefront.models import LineKind
    from storefront.services.orders import post_purchase_line_create
    from tests.followups.helpers import catalog, paid_order

    core, upsell, _ = catalog()
    order = paid_order("frozen@example.com", core, schedule=False)
    frozen = SimpleNamespace(
        net_amount=1000,
        tax_amount=190,
        total_amount=1190,
        tax_rate=Decimal("19.000"),
        tax_inclusive=None,
    )
    assert (
        post_purchase_line_create(
            order=order, kind=LineKind.UPSELL, offer=upsell, frozen=frozen, currency="USD"
        )
        is True
    )
    line = order.lines.get(kind=LineKind.UPSELL)
    assert (line.product_id, line.offer_id, line.description) == (
        upsell.product_id,
        upsell.pk,
        upsell.product.name,
    )
    assert (line.net_amount, line.tax_amount, line.total_amount, line.tax_rate) == (
        1000,
        190,
        1190,
        Decimal("19.000"),
    )
    assert line.tax_inclusive is False and line.tax_country == order.country
    # orderline_one_post_purchase: the order's second post-purchase line is refused, quietly.
    assert (
        post_purchase_line_create(
            order=order, kind=LineKind.DOWNSELL, offer=upsell, frozen=frozen, currency="USD"
        )
        is False
    )
    assert order.lines.filter(kind__in=[LineKind.UPSELL, LineKind.DOWNSELL]).count() == 1
