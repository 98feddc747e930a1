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


def test_a_double_clicked_save_of_a_new_product_makes_one_and_says_so_for_the_other(
    live_tenant, monkeypatch
):
    """Save clicked twice on a new product: two POSTs at once, both pass the form's slug
    check before either saves (held at a barrier, so the race happens on every run); the
    first is saved, the other rolls back whole and lands on the list with a message (the
    unique constraint's 500 before)."""
    import itertools
    import threading

    from django.contrib import admin
    from django.contrib.messages import get_messages
    from django.db import connection
    from django.test import Client

    from storefront.models import Product
    from tests.concurrency import in_threads

    owner = Client(HTTP_HOST="t1.localhost")
    assert owner.login(username="owner", password="owner-pass-123")
    page = owner.get("/admin/storefront/product/add/")
    form = page.context["adminform"].form
    data = {k: ("" if v is None else v) for k, v in form.initial.items()}
    data.update(
        {
            "name": "Twice",
            "slug": "twice",
            "price_amount": "15.00",
            "currency": "USD",
            "tier": Product._meta.get_field("tier").choices[0][0],
            "status": Product._meta.get_field("status").default,
            "ladder_position": "0",
            "refund_terms": "Refunds within 14 days.",
        }
    )
    for inline in page.context["inline_admin_formsets"]:
        prefix = inline.formset.prefix
        data.update(
            {
                f"{prefix}-TOTAL_FORMS": "0",
                f"{prefix}-INITIAL_FORMS": "0",
                f"{prefix}-MIN_NUM_FORMS": "0",
                f"{prefix}-MAX_NUM_FORMS": "1000",
            }
        )
    probe = owner.post("/admin/storefront/product/add/", {**data, "slug": "probe-first"})
    assert probe.status_code == 302, probe.context["adminform"].form.errors  # the form is whole
    product_admin = admin.site._registry[Product]
    both_checked = threading.Barrier(2, timeout=20)
    save_model = product_admin.save_model

    def save_once_both_are_checked(request, obj, form, change):
        both_checked.wait()
        return save_model(request, obj, form, change)

    monkeypatch.setattr(product_admin, "save_model", save_once_both_are_checked)
    clicks = itertools.count()

    def click():
        tab = Client(HTTP_HOST="t1.localhost", REMOTE_ADDR=f"198.51.100.{next(clicks) + 1}")
        tab.raise_request_exception = False
        tab.cookies = owner.cookies
        response = tab.post("/admin/storefront/product/add/", data)
        said = [str(m) for m in get_messages(response.wsgi_request)]
        return response.status_code, response.get("Location", ""), said

    results, errors = in_threads(2, click)
    assert errors == []
    assert all(status == 302 for status, _, _ in results), results
    conflicts = [r for r in results if any("nothing more was saved" in m for m in r[2])]
    assert len(conflicts) == 1 and conflicts[0][1] == "/admin/storefront/product/", results
    connection.set_tenant(live_tenant)
    assert Product.objects.filter(slug="twice").count() == 1
