"""Money in the admin's forms is typed and shown in the currency's major units ("12.50",
"1200" yen, "1.250" dinars) with the currency beside the input, stored in minor units
unchanged (core.money_forms); a bad amount is an error at the field, never a 500."""

from __future__ import annotations

import re

import pytest
from django import forms

from core.money_forms import MoneyField, major_text
from offers.models import Coupon, Offer
from storefront.models import Product, StoreSettings
from subscriptions.models import Plan
from tests.admin.test_audit_actions import _offer_form
from tests.factories import CouponFactory, OfferFactory, ProductFactory

# --- the field -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "typed", "minor", "shown"),
    [
        ("USD", "12.50", 1250, "12.50"),
        ("USD", "12.5", 1250, "12.50"),
        ("USD", "12", 1200, "12.00"),
        ("USD", "0.07", 7, "0.07"),
        ("USD", " 49.00 ", 4900, "49.00"),
        ("USD", ".5", 50, "0.50"),
        ("EUR", "1234567.89", 123456789, "1234567.89"),
        ("JPY", "1200", 1200, "1200"),
        ("JPY", "1200.", 1200, "1200"),
        ("KWD", "1.250", 1250, "1.250"),
        ("KWD", "3", 3000, "3.000"),
        ("BHD", "0.005", 5, "0.005"),
    ],
)
def test_an_amount_typed_in_major_units_is_stored_in_minor_units_and_shown_back(
    currency, typed, minor, shown
):
    field = MoneyField(currency=currency)
    assert field.clean(typed) == minor
    assert field.prepare_value(minor) == shown
    assert field.clean(field.prepare_value(minor)) == minor  # the round trip
    assert major_text(minor, currency) == shown


@pytest.mark.parametrize(
    ("currency", "typed", "message"),
    [
        ("USD", "12.345", "USD amounts have at most 2 decimal places, e.g. 12.50."),
        ("JPY", "12.5", "JPY amounts have no decimals: enter a whole number, e.g. 1200."),
        ("KWD", "1.2345", "KWD amounts have at most 3 decimal places, e.g. 12.500."),
        ("USD", "abc", "Enter an amount in USD, e.g. 12.50."),
        ("USD", "12.50.1", "Enter an amount in USD, e.g. 12.50."),
        ("USD", "1e3", "Enter an amount in USD, e.g. 12.50."),
        ("USD", ".", "Enter an amount in USD, e.g. 12.50."),
        ("USD", "$12", "Enter an amount in USD, e.g. 12.50."),
        ("USD", "١٢", "Enter an amount in USD, e.g. 12.50."),  # Arabic-Indic digits
        ("USD", "-5", "The amount cannot be negative."),
        ("USD", "-0.01", "The amount cannot be negative."),
        ("USD", "12\x00", "Enter the amount with digits and a point only, e.g. 12.50."),
        ("USD", "1,234.50", "Write the amount without thousands separators"),
        ("USD", "12,50", "Write the amount without thousands separators"),
        ("USD", "21474836.48", "Enter at most $21,474,836.47."),
        ("JPY", "9" * 30, "Enter at most ¥2,147,483,647."),
        ("USD", "9" * 500, "Enter the amount with digits and a point only"),
    ],
)
def test_a_bad_amount_is_a_readable_error(currency, typed, message):
    with pytest.raises(forms.ValidationError) as refused:
        MoneyField(currency=currency).clean(typed)
    assert any(m.startswith(message) for m in refused.value.messages), refused.value.messages


def test_an_empty_optional_amount_is_none_and_a_required_one_is_asked_for():
    assert MoneyField(required=False).clean("") is None
    with pytest.raises(forms.ValidationError):
        MoneyField().clean("")


# --- the admin's forms -----------------------------------------------------------------------


def _input(html: str, name: str) -> str:
    """The money input `name` with the currency around it, as the page renders it."""
    match = re.search(rf'<span class="money-input">(.*?name="{name}".*?)</span></span>', html, re.S)
    assert match, f"no money input {name}"
    return match.group(1)


def _value(html: str, name: str) -> str:
    tag = re.search(rf'<input[^>]*name="{name}"[^>]*>', html).group(0)
    found = re.search(r'value="([^"]*)"', tag)
    return found.group(1) if found else ""


def _product_form(product: Product | None = None, **overrides) -> dict:
    data = {
        "slug": "course",
        "name": "Course",
        "description": "",
        "tier": "entry",
        "ladder_position": "0",
        "price_amount": "49.00",
        "anchor_amount": "",
        "currency": "USD",
        "refund_terms": "Refundable within 30 days.",
        "status": "draft",
        "benefits": "",
        "included": "",
        "video_url": "",
        "images-TOTAL_FORMS": "0",
        "images-INITIAL_FORMS": "0",
        "testimonials-TOTAL_FORMS": "0",
        "testimonials-INITIAL_FORMS": "0",
    }
    if product is not None:
        data.update(slug=product.slug, name=product.name, currency=product.currency)
    data.update(overrides)
    return data


def test_the_product_form_shows_and_takes_its_prices_in_the_currency(owner_client):
    blank = owner_client.get("/admin/storefront/product/add/").content.decode()
    assert "$" in _input(blank, "price_amount") and "USD" in _input(blank, "price_amount")
    assert "cents" not in blank and "minor units" not in blank

    added = owner_client.post(
        "/admin/storefront/product/add/", _product_form(price_amount="49.00", anchor_amount="79")
    )
    assert added.status_code == 302, added.content[:2000]
    product = Product.objects.get(slug="course")
    assert (product.price_amount, product.anchor_amount) == (4900, 7900)

    page = owner_client.get(f"/admin/storefront/product/{product.pk}/change/").content.decode()
    assert _value(page, "price_amount") == "49.00" and _value(page, "anchor_amount") == "79.00"
    assert "cents" not in page and "minor units" not in page


def test_a_yen_product_is_priced_in_whole_yen_and_a_dinar_product_in_fils(owner_client):
    yen = ProductFactory(slug="yen", currency="JPY", price_amount=1200)
    page = owner_client.get(f"/admin/storefront/product/{yen.pk}/change/").content.decode()
    assert _value(page, "price_amount") == "1200"
    assert "¥" in _input(page, "price_amount") and "JPY" in _input(page, "price_amount")
    refused = owner_client.post(
        f"/admin/storefront/product/{yen.pk}/change/", _product_form(yen, price_amount="12.50")
    )
    assert refused.status_code == 200
    assert "JPY amounts have no decimals" in refused.content.decode()
    yen.refresh_from_db()
    assert yen.price_amount == 1200

    dinar = ProductFactory(slug="dinar", currency="KWD", price_amount=1000)
    saved = owner_client.post(
        f"/admin/storefront/product/{dinar.pk}/change/",
        _product_form(dinar, price_amount="12.345"),
    )
    assert saved.status_code == 302, saved.content[:2000]
    dinar.refresh_from_db()
    assert dinar.price_amount == 12345
    page = owner_client.get(f"/admin/storefront/product/{dinar.pk}/change/").content.decode()
    assert _value(page, "price_amount") == "12.345" and "KWD" in _input(page, "price_amount")


def test_a_currency_changed_with_the_price_is_judged_in_the_new_currency(owner_client):
    product = ProductFactory(slug="switch", currency="USD", price_amount=4900)
    refused = owner_client.post(
        f"/admin/storefront/product/{product.pk}/change/",
        _product_form(product, currency="JPY", price_amount="49.50"),
    )
    assert refused.status_code == 200 and "JPY amounts have no decimals" in refused.content.decode()
    saved = owner_client.post(
        f"/admin/storefront/product/{product.pk}/change/",
        _product_form(product, currency="JPY", price_amount="4900"),
    )
    assert saved.status_code == 302
    product.refresh_from_db()
    assert (product.price_amount, product.currency) == (4900, "JPY")


@pytest.mark.parametrize("typed", ["abc", "12.345", "-3", "99999999999", "4\x00"])
def test_a_bad_price_in_the_admin_is_a_form_error_and_nothing_is_written(owner_client, typed):
    product = ProductFactory(slug="kept", price_amount=4900)
    response = owner_client.post(
        f"/admin/storefront/product/{product.pk}/change/",
        _product_form(product, price_amount=typed),
    )
    # A NUL byte is refused by the input boundary before any form (400, with the reason).
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert 'class="errorlist' in response.content.decode()
    product.refresh_from_db()
    assert product.price_amount == 4900


def test_the_offer_form_shows_and_takes_the_offer_price_in_its_currency(owner_client):
    offer = OfferFactory(price_amount=1900)
    page = owner_client.get(f"/admin/offers/offer/{offer.pk}/change/").content.decode()
    assert _value(page, "price_amount") == "19.00" and "USD" in _input(page, "price_amount")
    assert "cents" not in page and "minor units" not in page
    form = _offer_form(offer)
    assert form["price_amount"] == "19.00"
    saved = owner_client.post(
        f"/admin/offers/offer/{offer.pk}/change/", {**form, "price_amount": "17.50"}
    )
    assert saved.status_code == 302, saved.content[:2000]
    offer.refresh_from_db()
    assert offer.price_amount == 1750
    refused = owner_client.post(
        f"/admin/offers/offer/{offer.pk}/change/", {**form, "price_amount": "1.999"}
    )
    assert refused.status_code == 200 and "at most 2 decimal places" in refused.content.decode()
    assert Offer.objects.get(pk=offer.pk).price_amount == 1750


def test_the_coupon_form_takes_a_fixed_amount_off_in_its_currency(owner_client):
    from tests.admin.test_coupon_admin import _form

    blank = owner_client.get("/admin/offers/coupon/add/").content.decode()
    assert "USD" in _input(blank, "amount_off") and "cents" not in blank
    added = owner_client.post(
        "/admin/offers/coupon/add/",
        _form(code="FIVE", kind="fixed", percent_off="", amount_off="5.00"),
    )
    assert added.status_code == 302, added.content[:2000]
    coupon = Coupon.objects.get(code="FIVE")
    assert coupon.amount_off == 500 and coupon.describe == "$5.00 off"
    page = owner_client.get(f"/admin/offers/coupon/{coupon.pk}/change/").content.decode()
    assert _value(page, "amount_off") == "5.00"

    yen = CouponFactory(code="YEN", kind="fixed", percent_off=None, amount_off=500, currency="JPY")
    page = owner_client.get(f"/admin/offers/coupon/{yen.pk}/change/").content.decode()
    assert _value(page, "amount_off") == "500" and "JPY" in _input(page, "amount_off")


def test_the_plan_form_takes_the_setup_fee_in_the_products_currency(owner_client):
    product = ProductFactory(slug="club", currency="EUR", price_amount=900)
    added = owner_client.post(
        "/admin/subscriptions/plan/add/",
        {
            "product": str(product.pk),
            "kind": "subscription",
            "interval_unit": "month",
            "interval_count": "1",
            "trial_days": "0",
            "setup_fee_amount": "25.00",
            "instalments": "",
        },
    )
    assert added.status_code == 302, added.content[:2000]
    plan = Plan.objects.get(product=product)
    assert plan.setup_fee_amount == 2500
    page = owner_client.get(f"/admin/subscriptions/plan/{plan.pk}/change/").content.decode()
    assert _value(page, "setup_fee_amount") == "25.00"
    assert "€" in _input(page, "setup_fee_amount") and "EUR" in _input(page, "setup_fee_amount")


def test_the_support_refund_limit_is_typed_in_the_stores_currency(owner_client):
    ProductFactory(slug="main", currency="USD")
    row = StoreSettings.current()
    page = owner_client.get(f"/admin/storefront/storesettings/{row.pk}/change/").content.decode()
    assert _value(page, "support_refund_limit") == "50.00"
    assert "USD" in _input(page, "support_refund_limit")
    assert "cents" not in page
    response = owner_client.post(
        f"/admin/storefront/storesettings/{row.pk}/change/",
        {
            "prices_include_tax": "",
            "statement_descriptor": row.statement_descriptor,
            "support_email": "help@t1.example",
            "support_refund_limit": "abc",
        },
    )
    assert response.status_code == 200
    assert "Enter an amount in USD, e.g. 12.50." in response.content.decode()
    assert StoreSettings.current().support_refund_limit == 5000


def test_a_price_test_takes_its_arm_prices_in_the_offers_currency(owner_client):
    from analytics.models import Experiment, ExperimentStatus
    from tests.admin.test_store_admin_pages import _experiment_form

    offer = OfferFactory(price_amount=1900)
    variants = '{"a": {"price_amount": "19.00"}, "b": {"price_amount": "24.50"}}'
    saved = owner_client.post(
        "/admin/analytics/experiment/add/",
        _experiment_form(offer, kind="structural", variants=variants),
    )
    assert saved.status_code == 302, saved.content[:2000]
    experiment = Experiment.objects.get()
    assert experiment.variants == {"a": {"price_amount": 1900}, "b": {"price_amount": 2450}}
    page = owner_client.get(f"/admin/analytics/experiment/{experiment.pk}/change/")
    assert "24.50" in page.content.decode() and "2450" not in page.content.decode()

    refused = owner_client.post(
        f"/admin/analytics/experiment/{experiment.pk}/change/",
        _experiment_form(
            offer, kind="structural", variants='{"a": {}, "b": {"price_amount": "2.505"}}'
        ),
    )
    assert refused.status_code == 200
    assert "at most 2 decimal places" in refused.content.decode()
    assert Experiment.objects.get().variants["b"] == {"price_amount": 2450}

    # Once started, the arms are read only and still shown in dollars.
    Experiment.objects.filter(pk=experiment.pk).update(status=ExperimentStatus.RUNNING)
    page = owner_client.get(f"/admin/analytics/experiment/{experiment.pk}/change/").content.decode()
    assert "$24.50" in page and 'name="variants"' not in page
