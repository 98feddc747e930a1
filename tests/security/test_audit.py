"""The audit trail: admin changes with who, what and where; append-only; a read-only admin."""

import pytest
from django.db import DatabaseError, transaction
from django.test import Client
from django_tenants.utils import tenant_context

from audit.models import AuditEntry
from audit.services import Actor, audit_record
from storefront.models import Product

ADMIN = "/_sec/audited-admin/storefront/product/"
UA = "Mozilla/5.0 (creator laptop)"


@pytest.fixture
def owner_client(tenant):
    from django.contrib.auth import get_user_model

    c = Client(HTTP_HOST="t1.localhost", REMOTE_ADDR="198.51.100.23", HTTP_USER_AGENT=UA)
    c.force_login(get_user_model().objects.get(username="owner"))
    return c


@pytest.fixture
def product(tenant):
    return Product.objects.create(
        slug="course", name="Course", price_amount=4900, status=Product.Status.DRAFT
    )


def _form(product, **overrides):
    data = {
        "slug": product.slug,
        "name": product.name,
        "price_amount": product.price_amount,
        "currency": product.currency,
        "status": product.status,
    }
    data.update(overrides)
    return data


@pytest.mark.urls("tests.security.urls")
def test_a_price_change_in_the_admin_records_who_what_and_where(owner_client, product):
    response = owner_client.post(f"{ADMIN}{product.pk}/change/", _form(product, price_amount=5900))
    assert response.status_code == 302, response.content[:800]

    entry = AuditEntry.objects.get(action="storefront.product.change")
    assert (entry.actor_kind, entry.actor_label) == ("user", "owner")
    assert (entry.object_type, entry.object_id, entry.object_repr) == (
        "storefront.product",
        str(product.pk),
        "Course",
    )
    assert entry.changes == {"price_amount": [4900, 5900]}
    assert entry.ip_address == "198.51.100.23" and entry.user_agent == UA
    assert entry.occurred_at is not None


@pytest.mark.urls("tests.security.urls")
def test_adding_and_deleting_in_the_admin_are_recorded(owner_client, tenant):
    response = owner_client.post(
        f"{ADMIN}add/",
        {
            "slug": "new-thing",
            "name": "New thing",
            "price_amount": 900,
            "currency": "USD",
            "status": "draft",
        },
    )
    assert response.status_code == 302, response.content[:800]
    product = Product.objects.get(slug="new-thing")
    added = AuditEntry.objects.get(action="storefront.product.add")
    assert added.object_id == str(product.pk) and added.changes["price_amount"] == [None, 900]

    assert owner_client.post(f"{ADMIN}{product.pk}/delete/", {"post": "yes"}).status_code == 302
    deleted = AuditEntry.objects.get(action="storefront.product.delete")
    assert deleted.object_id == str(product.pk)
    assert deleted.changes["name"] == ["New thing", None]


@pytest.mark.urls("tests.security.urls")
def test_an_admin_action_is_recorded_per_object_with_what_it_changed(owner_client, product):
    second = Product.objects.create(slug="second", name="Second", price_amount=100)
    response = owner_client.post(
        ADMIN,
        {
            "action": "activate",
            "_selected_action": [product.pk, second.pk],
            "index": 0,
        },
    )
    assert response.status_code == 302
    entries = AuditEntry.objects.filter(action="storefront.product.action.activate").order_by(
        "object_id"
    )
    assert [e.object_id for e in entries] == sorted([str(product.pk), str(second.pk)])
    assert all(e.changes == {"status": ["draft", "active"]} for e in entries)
    assert all(e.actor_label == "owner" and e.ip_address == "198.51.100.23" for e in entries)


@pytest.mark.urls("tests.security.urls")
def test_an_admin_save_that_fails_later_leaves_neither_the_change_nor_its_audit_row(
    owner_client, product, monkeypatch
):
    from tests.security.urls import ProductAdmin

    def boom(self, request, form, formsets, change):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ProductAdmin, "save_related", boom)
    with pytest.raises(RuntimeError):
        owner_client.post(f"{ADMIN}{product.pk}/change/", _form(product, price_amount=1))
    product.refresh_from_db()
    assert product.price_amount == 4900
    assert not AuditEntry.objects.exists()


def test_audit_entries_cannot_be_updated_or_deleted(tenant):
    entry = audit_record(
        request_or_actor=Actor.system("test"), action="offer.pause", summary="paused"
    )
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).update(summary="nothing happened")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).delete()
    assert AuditEntry.objects.get(pk=entry.pk).summary == "paused"


def test_the_creator_can_read_the_trail_but_not_add_change_or_delete(owner_client, tenant):
    entry = audit_record(request_or_actor=Actor.system("reconcile"), action="payments.refund.issue")
    listing = owner_client.get("/admin/audit/auditentry/")
    assert listing.status_code == 200 and b"payments.refund.issue" in listing.content
    detail = owner_client.get(f"/admin/audit/auditentry/{entry.pk}/change/")
    assert detail.status_code == 200 and b'name="_save"' not in detail.content
    assert owner_client.get("/admin/audit/auditentry/add/").status_code == 403
    assert owner_client.post(f"/admin/audit/auditentry/{entry.pk}/change/", {}).status_code == 403
    assert (
        owner_client.post(
            f"/admin/audit/auditentry/{entry.pk}/delete/", {"post": "yes"}
        ).status_code
        == 403
    )
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_the_trail_is_per_tenant(tenant, other_tenant):
    audit_record(request_or_actor=Actor.system("t1-only"), action="offer.pause")
    with tenant_context(other_tenant):
        assert not AuditEntry.objects.filter(actor_label="t1-only").exists()


def test_secrets_in_recorded_changes_are_masked(tenant):
    entry = audit_record(
        request_or_actor=Actor.api_key(key_id=7, label="key sk_live_…"),
        action="webhooks.subscription.change",
        changes={
            "signing_secret": ["whsec_old", "whsec_new"],
            "api_key": "abc123",
            "note": "buyer typed 4242 4242 4242 4242 in the name field",
            "url": ["https://a.example/hook", "https://b.example/hook"],
        },
    )
    assert (
        entry.changes["signing_secret"] == "[REDACTED]" and entry.changes["api_key"] == "[REDACTED]"
    )
    assert "4242 4242 4242 4242" not in entry.changes["note"]
    assert entry.changes["url"] == ["https://a.example/hook", "https://b.example/hook"]
    assert (entry.actor_kind, entry.actor_id) == ("api_key", "7")
