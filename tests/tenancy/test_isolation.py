"""Tenant isolation: hosts, pages, admin sessions, cache keys, file paths and tasks."""

import pytest
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django_tenants.utils import tenant_context

from analytics.models import Event
from storefront.models import Product


def _product(slug: str, name: str, price: int = 1000) -> Product:
    return Product.objects.create(
        slug=slug, name=name, price_amount=price, status=Product.Status.ACTIVE
    )


def test_a_tenant_host_never_shows_another_tenants_products(tenant, other_tenant, client_for):
    _product("alpha-guide", "Alpha guide")
    with tenant_context(other_tenant):
        _product("beta-guide", "Beta guide")

    page_a = client_for("t1.localhost").get("/").content.decode()
    page_b = client_for("t2.localhost").get("/").content.decode()

    assert "Alpha guide" in page_a and "Beta guide" not in page_a
    assert "Beta guide" in page_b and "Alpha guide" not in page_b
    assert client_for("t2.localhost").get("/p/alpha-guide/").status_code == 404
    assert client_for("t1.localhost").get("/p/alpha-guide/").status_code == 200


def test_an_unknown_host_gets_404(db, client_for):
    assert client_for("nobody.localhost").get("/").status_code == 404


def test_the_bare_platform_domain_serves_the_landing_page(db, client_for):
    response = client_for("localhost").get("/")
    assert response.status_code == 200
    assert b"Creator storefronts" in response.content


def test_an_admin_login_on_one_store_is_worthless_on_another(tenant, client_for):
    client = client_for("t1.localhost")
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": "owner", "password": "owner-pass-123", "next": "/admin/"},
    )
    assert response.status_code == 302, response.content[:500]
    assert client.get("/admin/").status_code == 200

    # Same cookie jar, other store: the session does not exist in t2's schema.
    client.defaults["HTTP_HOST"] = "t2.localhost"
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_tenant_staff_cannot_see_creators_and_domains_in_their_admin(tenant, client_for):
    client = client_for("t1.localhost")
    client.post("/admin/login/", {"username": "owner", "password": "owner-pass-123"})
    assert client.get("/admin/tenants/creator/").status_code in (403, 404)
    assert b"tenants/domain" not in client.get("/admin/").content


def test_cache_keys_are_per_tenant(tenant, other_tenant):
    cache.set("greeting", "hello from t1")
    assert cache.get("greeting") == "hello from t1"
    with tenant_context(other_tenant):
        assert cache.get("greeting") is None
        cache.set("greeting", "hello from t2")
    assert cache.get("greeting") == "hello from t1"


def test_uploaded_file_paths_are_per_tenant(tenant, other_tenant):
    name_a = default_storage.save("deliverables/guide.txt", ContentFile(b"A"))
    path_a = default_storage.path(name_a)
    with tenant_context(other_tenant):
        name_b = default_storage.save("deliverables/guide.txt", ContentFile(b"B"))
        path_b = default_storage.path(name_b)
        assert not default_storage.exists(name_a) or path_a != default_storage.path(name_a)
    assert path_a != path_b
    assert f"/{tenant.schema_name}/" in path_a and f"/{other_tenant.schema_name}/" in path_b
    with open(path_a, "rb") as fa, open(path_b, "rb") as fb:
        assert (fa.read(), fb.read()) == (b"A", b"B")


def test_a_task_enqueued_in_a_tenant_writes_there_and_nowhere_else(tenant, other_tenant):
    from analytics.tasks import event_record

    event_record.delay(name="page_viewed", source="isolation-probe")

    assert Event.objects.filter(source="isolation-probe").count() == 1
    with tenant_context(other_tenant):
        assert Event.objects.filter(source="isolation-probe").count() == 0


def test_a_tenant_task_without_a_tenant_refuses_to_run(db):
    from analytics.tasks import event_record
    from core.tasks import TenantRequired

    connection.set_schema_to_public()
    with pytest.raises(TenantRequired):
        event_record.apply(kwargs={"name": "page_viewed"}, throw=True)


def test_the_event_log_refuses_updates_and_deletes(tenant):
    from django.db import DatabaseError, transaction

    event = Event.objects.create(name="page_viewed")
    with pytest.raises(DatabaseError), transaction.atomic():
        Event.objects.filter(pk=event.pk).update(source="rewritten")
    with pytest.raises(DatabaseError), transaction.atomic():
        Event.objects.filter(pk=event.pk).delete()
