"""The creator's admin: only this store's rows, keys shown once, refunds as an action."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from partners.models import ApiKey
from storefront.models import Customer, Order


@pytest.fixture
def staff_client(tenant, client_for):
    user = get_user_model().objects.get(email="owner@t1.example")
    client = client_for("t1.localhost")
    client.force_login(user)
    return client


def test_the_store_admin_never_lists_another_stores_orders(staff_client, tenant, other_tenant):
    connection.set_tenant(other_tenant)
    customer = Customer.objects.create(email="b-only@t2.example")
    Order.objects.create(token="orderofstoreb", customer=customer, currency="USD", country="US")
    connection.set_tenant(tenant)
    customer = Customer.objects.create(email="a-buyer@t1.example")
    Order.objects.create(token="orderofstorea", customer=customer, currency="USD", country="US")
    page = staff_client.get("/admin/storefront/order/")
    assert page.status_code == 200
    assert "orderofstorea" in page.content.decode()
    assert "orderofstoreb" not in page.content.decode()
    search = staff_client.get("/admin/storefront/order/", {"q": "orderofstoreb"})
    assert search.context["cl"].result_count == 0
    assert [o.token for o in page.context["cl"].result_list] == ["orderofstorea"]


def test_a_new_api_key_is_shown_once_and_stored_only_hashed(staff_client):
    response = staff_client.post(
        "/admin/partners/apikey/add/", {"name": "Zapier", "scope": "write", "rate_per_minute": 600}
    )
    assert response.status_code == 200
    token = response.context["secret"]
    assert token.startswith("sfk_") and token in response.content.decode()
    # Shown on this page only: not in a message, so not in the (readable) messages cookie.
    assert "no-store" in response["Cache-Control"]
    assert all(token not in morsel.value for morsel in response.cookies.values())
    assert all(token not in str(m) for m in response.context["messages"])
    key = ApiKey.objects.get(name="Zapier")
    assert token.startswith(f"sfk_{key.prefix}_") and token not in key.secret_hash
    again = staff_client.get(f"/admin/partners/apikey/{key.pk}/change/")
    assert token not in again.content.decode()


def test_every_admin_page_of_the_store_renders(staff_client):
    for url in [
        "/admin/",
        "/admin/storefront/product/",
        "/admin/storefront/customer/",
        "/admin/offers/offer/",
        "/admin/payments/ledgerentry/",
        "/admin/payments/chargeattempt/",
        "/admin/payments/mismatch/",
        "/admin/partners/apikey/",
        "/admin/partners/webhooksubscription/",
        "/admin/partners/webhookdelivery/",
        "/admin/analytics/event/",
        "/admin/offers/offer/add/",
        "/admin/analytics/experiment/add/",
        "/admin/storefront/taxrate/add/",
        "/admin/partners/webhooksubscription/add/",
        "/admin/partners/apikey/add/",
        "/admin/payments/refund/",
        "/admin/payments/webhookevent/",
        "/admin/storefront/followupsend/",
        "/admin/offers/offerdecision/",
        "/admin/analytics/experiment/",
        "/admin/storefront/storesettings/",
        "/admin/audit/auditentry/",
    ]:
        assert staff_client.get(url).status_code == 200, url


def test_a_new_webhook_signing_secret_is_shown_on_the_page_not_in_the_messages_cookie(staff_client):
    response = staff_client.post(
        "/admin/partners/webhooksubscription/add/",
        {"url": "https://hooks.partner.example/in", "event_types": '["*"]', "is_active": "on"},
    )
    assert response.status_code == 200, response.content[:1000]
    secret = response.context["secret"]
    assert secret.startswith("whsk_") and secret in response.content.decode()
    assert all(secret not in morsel.value for morsel in response.cookies.values())
    listing = staff_client.get("/admin/partners/webhooksubscription/")
    assert secret not in listing.content.decode()


@pytest.mark.parametrize("rate", ["0", "6001", "100000"])
def test_a_key_rate_limit_outside_one_to_six_thousand_a_minute_is_refused(staff_client, rate):
    response = staff_client.post(
        "/admin/partners/apikey/add/", {"name": "Greedy", "scope": "read", "rate_per_minute": rate}
    )
    assert (
        response.status_code == 200
        and "rate_per_minute" in response.context["adminform"].form.errors
    )
    assert not ApiKey.objects.filter(name="Greedy").exists()


def test_the_key_service_refuses_a_rate_limit_above_the_maximum(tenant):
    from partners.services import api_key_create

    with pytest.raises(ValueError):
        api_key_create(name="greedy", scope="read", rate_per_minute=100_000)
    assert api_key_create(name="ok", scope="read", rate_per_minute=6000).api_key.pk


def test_an_action_on_a_selection_that_names_no_row_changes_nothing_and_says_so(owner_client):
    from tests.factories import ProductFactory

    product = ProductFactory(slug="kept", name="Kept course")
    response = owner_client.post(
        "/admin/storefront/product/",
        {"action": "delete_selected", "_selected_action": [str(product.pk), "x"], "index": "0"},
        follow=True,
    )
    assert response.status_code == 200  # Django's 500 before (a ValueError in the filter)
    assert "The selection names no row of this list: nothing was changed." in [
        str(m) for m in response.context["messages"]
    ]
    assert type(product).objects.filter(pk=product.pk).exists()
