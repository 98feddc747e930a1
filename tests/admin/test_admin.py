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
    response = staff_client.post("/admin/partners/apikey/add/", {
        "name": "Zapier", "scope": "write", "rate_per_minute": 600}, follow=True)
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    assert len(shown) >= 1 and "sfk_" in shown[0]
    token = shown[0].split(": ", 1)[1].strip()
    key = ApiKey.objects.get(name="Zapier")
    assert token.startswith(f"sfk_{key.prefix}_") and token not in key.secret_hash
    again = staff_client.get(f"/admin/partners/apikey/{key.pk}/change/")
    assert token not in again.content.decode()


def test_every_admin_page_of_the_store_renders(staff_client):
    for url in ["/admin/", "/admin/storefront/product/", "/admin/storefront/customer/",
                "/admin/offers/offer/", "/admin/payments/ledgerentry/",
                "/admin/payments/chargeattempt/", "/admin/payments/mismatch/",
                "/admin/partners/apikey/", "/admin/partners/webhooksubscription/",
                "/admin/partners/webhookdelivery/", "/admin/analytics/event/",
                "/admin/offers/offer/add/", "/admin/analytics/experiment/add/",
                "/admin/storefront/taxrate/add/", "/admin/partners/webhooksubscription/add/",
                "/admin/partners/apikey/add/", "/admin/payments/refund/",
                "/admin/payments/webhookevent/", "/admin/storefront/followupsend/",
                "/admin/offers/offerdecision/", "/admin/analytics/experiment/",
                "/admin/storefront/storesettings/", "/admin/audit/auditentry/"]:
        assert staff_client.get(url).status_code == 200, url
