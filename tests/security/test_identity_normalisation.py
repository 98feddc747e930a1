"""Identities compared for security are compared in one normalised form (core.identity):
buyers' e-mail addresses (one buyer, one saved card, one unsubscribe, one experiment arm),
store domains (routing and uniqueness). The login lockout is in test_login_lockout.py."""

from __future__ import annotations

import pytest
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from core.identity import domain_key, email_key, username_key
from offers.experiments import buyer_key
from payments import services as payments
from payments.models import GatewayCustomer, SavedPaymentMethod
from storefront.models import Customer
from tenants.services import creator_check
from tests.factories import ProductFactory

FULLWIDTH_DOMAIN = "BUYER@ｅｘａｍｐｌｅ.ＣＯＭ"


def test_each_kind_of_identity_has_one_normal_form():
    assert username_key("ｏｗｎｅｒ") == username_key("ℴwner") == username_key("OWNER") == "owner"
    assert email_key("  Buyer@ｅｘａｍｐｌｅ.com ") == "buyer@example.com"
    assert email_key(FULLWIDTH_DOMAIN) == "buyer@example.com"
    assert domain_key("Shop.Example.COM.") == "shop.example.com"
    assert domain_key("ｓｈｏｐ.example.com") == "shop.example.com"
    assert domain_key("bücher.example") == "xn--bcher-kva.example"


@given(st.text())
def test_normalising_any_text_never_raises_and_is_idempotent(text):
    for key in (username_key, email_key, domain_key):
        once = key(text)
        assert key(once) == once


def test_a_saved_card_is_found_for_every_spelling_of_its_buyers_address(tenant):
    customer = GatewayCustomer.objects.create(email="buyer@example.com", gateway_ref="cus_norm1")
    method = SavedPaymentMethod.objects.create(
        customer=customer, gateway_ref="pm_norm1", consent_text="ok", consent_at=timezone.now()
    )
    assert payments.vault_method_for(email=FULLWIDTH_DOMAIN) == method


def test_an_experiment_assigns_every_spelling_of_an_address_to_one_buyer():
    assert buyer_key(email=FULLWIDTH_DOMAIN) == buyer_key(email="buyer@example.com")


@pytest.mark.gateway
def test_two_checkouts_with_look_alike_addresses_are_one_buyer(tenant, client_for, stripe_api_base):
    ProductFactory(slug="course", name="Photo course", price_amount=4900)
    client = client_for("t1.localhost")
    for email in ("buyer@example.com", FULLWIDTH_DOMAIN):
        started = client.post(
            "/checkout/course/start",
            {"email": email, "country": "US", "region": "", "save_card": "on"},
        )
        assert started.status_code == 200, started.content
    assert list(Customer.objects.values_list("email", flat=True)) == ["buyer@example.com"]
    assert GatewayCustomer.objects.count() == 1


@pytest.mark.parametrize("host", ["T1.LOCALHOST", "t1.localhost.", "T1.Localhost."])
def test_a_store_is_routed_by_its_domain_in_any_case_and_with_a_trailing_dot(tenant, host):
    from django.test import Client

    response = Client(HTTP_HOST=host).get("/")
    assert response.status_code == 200
    assert response.wsgi_request.tenant.schema_name == tenant.schema_name


@pytest.mark.parametrize("domain", ["T1.localhost.", "ｔ１.localhost", "t1.LOCALHOST"])
def test_a_new_store_cannot_take_a_look_alike_of_an_existing_domain(db, domain):
    errors = creator_check(
        slug="newshop", display_name="New", domain=domain, owner_email="new@example.com"
    )
    assert errors == ["domain 't1.localhost' is taken"]
