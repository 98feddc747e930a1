"""Custom domains: only a verified name routes, to one store; removal stops it everywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django_tenants.utils import schema_context, tenant_context

from storefront.models import Product
from tenants.dns import StaticResolver
from tenants.domains import (
    CustomDomainError,
    custom_domain_add,
    custom_domain_records,
    custom_domain_remove,
    custom_domain_verify,
    custom_domains_verify_pending,
)
from tenants.models import Creator, CustomDomain, Domain
from tenants.routing import routing_cache

HOST = "shop.example.com"


@pytest.fixture
def hosts(settings):
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, HOST, "other.example.org"]
    settings.PLATFORM_DOMAIN = "localhost"
    settings.CUSTOM_DOMAIN_TARGET = "edge.localhost"
    return settings


def _records_resolver(row: CustomDomain, *, cname: str = "edge.localhost") -> StaticResolver:
    return StaticResolver(
        txt={f"_storefront-verify.{row.domain}": [f"storefront-verify={row.token}"]},
        cname={row.domain: cname},
    )


def _product(name: str) -> Product:
    return Product.objects.create(
        slug=name.lower(), name=name, price_amount=1000, status=Product.Status.ACTIVE
    )


@pytest.fixture
def t1_public(db, hosts):
    connection.set_schema_to_public()
    return Creator.objects.get(slug="t1")


# --- adding: bad input is refused with a reason and writes nothing ---------------------------
@pytest.mark.parametrize(
    ("entered", "reason"),
    [
        ("", "enter a domain"),
        ("not a domain", "not a valid domain"),
        ("shop..example.com", "not a valid domain"),
        ("-shop.example.com", "not a valid domain"),
        ("localhost", "platform's own domain"),
        ("evil.localhost", "platform's own domain"),
        ("T2.LOCALHOST.", "platform's own domain"),
        ("192.0.2.10", "IP address"),
        ("[2001:db8::1]", "not a domain name"),
        ("https://shop.example.com/", "not a domain name"),
        ("shop.example.com:8443", "not a domain name"),
        ("single-label", "not a valid domain"),
        ("shop\x00.example.com", "NUL"),
        ("a" * 400 + ".com", "too long"),
    ],
)
def test_a_bad_domain_is_refused_with_a_reason_and_nothing_is_written(t1_public, entered, reason):
    with pytest.raises(CustomDomainError, match=reason):
        custom_domain_add(creator=t1_public, domain=entered)
    assert not CustomDomain.objects.exists()


def test_a_domain_is_stored_in_normal_form_and_cannot_be_added_twice_in_another_spelling(
    t1_public,
):
    row = custom_domain_add(creator=t1_public, domain="Shop.Example.COM.")
    assert row.domain == HOST and row.verified_at is None and len(row.token) == 32
    with pytest.raises(CustomDomainError, match="already added to this store"):
        custom_domain_add(creator=t1_public, domain="ｓｈｏｐ.example.com")
    assert CustomDomain.objects.count() == 1


def test_the_records_to_create_are_a_cname_to_the_target_and_a_txt_with_the_token(t1_public):
    row = custom_domain_add(creator=t1_public, domain=HOST)
    records = {(r.type, r.name, r.value) for r in custom_domain_records(row)}
    assert records == {
        ("CNAME", HOST, "edge.localhost"),
        ("TXT", f"_storefront-verify.{HOST}", f"storefront-verify={row.token}"),
    }


def test_a_domain_another_store_verified_is_refused_with_a_clear_message(t1_public):
    t2 = Creator.objects.get(slug="t2")
    theirs = custom_domain_add(creator=t2, domain=HOST)
    assert custom_domain_verify(custom_domain=theirs, resolver=_records_resolver(theirs))
    with pytest.raises(CustomDomainError, match="already in use by another store"):
        custom_domain_add(creator=t1_public, domain="SHOP.example.com")
    assert list(CustomDomain.objects.values_list("creator__slug", flat=True)) == ["t2"]


def test_a_pending_claim_does_not_block_the_owner_and_the_loser_cannot_verify(t1_public):
    t2 = Creator.objects.get(slug="t2")
    squatter = custom_domain_add(creator=t2, domain=HOST)
    owner = custom_domain_add(creator=t1_public, domain=HOST)  # pending claims block nobody
    assert custom_domain_verify(custom_domain=owner, resolver=_records_resolver(owner))
    # The squatter publishes nothing of theirs; even with their token they lose to the owner.
    assert not custom_domain_verify(custom_domain=squatter, resolver=_records_resolver(squatter))
    squatter.refresh_from_db()
    assert squatter.verified_at is None and "another store" in squatter.last_error
    assert Domain.objects.get(domain=HOST).tenant_id == t1_public.pk


# --- verification ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("resolver_for", "problem"),
    [
        (lambda row: StaticResolver(), "does not hold"),
        (
            lambda row: StaticResolver(
                txt={f"_storefront-verify.{row.domain}": ["storefront-verify=wrong"]},
                cname={row.domain: "edge.localhost"},
            ),
            "does not hold",
        ),
        (lambda row: _records_resolver(row, cname="elsewhere.example.net"), "points to"),
        (
            lambda row: StaticResolver(
                txt={f"_storefront-verify.{row.domain}": [f"storefront-verify={row.token}"]}
            ),
            "is missing",
        ),
        (lambda row: StaticResolver(failing=True), "could not be asked"),
    ],
)
def test_an_unverified_domain_records_why_and_does_not_route(
    t1_public, client_for, resolver_for, problem
):
    row = custom_domain_add(creator=t1_public, domain=HOST)
    assert not custom_domain_verify(custom_domain=row, resolver=resolver_for(row))
    row.refresh_from_db()
    assert row.verified_at is None and problem in row.last_error and row.last_checked_at
    assert not Domain.objects.filter(domain=HOST).exists()
    assert client_for(HOST).get("/").status_code == 404


def test_a_verified_domain_routes_to_its_store(t1_public, client_for):
    with tenant_context(t1_public):
        _product("Alpha")
    connection.set_schema_to_public()
    row = custom_domain_add(creator=t1_public, domain=HOST)
    assert client_for(HOST).get("/").status_code == 404
    assert custom_domain_verify(custom_domain=row, resolver=_records_resolver(row))
    response = client_for(HOST).get("/")
    assert response.status_code == 200 and "Alpha" in response.content.decode()
    domain = Domain.objects.get(domain=HOST)
    assert domain.tenant_id == t1_public.pk and not domain.is_primary


def test_an_apex_with_flattened_addresses_of_the_target_verifies(t1_public):
    row = custom_domain_add(creator=t1_public, domain="example.org")
    resolver = StaticResolver(
        txt={"_storefront-verify.example.org": [f"storefront-verify={row.token}"]},
        addresses={"example.org": ["192.0.2.7"], "edge.localhost": ["192.0.2.7", "192.0.2.8"]},
    )
    assert custom_domain_verify(custom_domain=row, resolver=resolver)


def test_the_periodic_check_verifies_what_is_ready_and_one_bad_row_stops_nothing(t1_public):
    t2 = Creator.objects.get(slug="t2")
    ready = custom_domain_add(creator=t1_public, domain=HOST)
    waiting = custom_domain_add(creator=t2, domain="other.example.org")

    class Resolver(StaticResolver):
        def txt(self, name):
            if "other.example.org" in name:
                raise RuntimeError("a resolver bug on one row")
            return super().txt(name)

    resolver = Resolver(
        txt={f"_storefront-verify.{HOST}": [f"storefront-verify={ready.token}"]},
        cname={HOST: "edge.localhost"},
    )
    assert custom_domains_verify_pending(resolver=resolver) == 1
    ready.refresh_from_db()
    waiting.refresh_from_db()
    assert ready.verified_at is not None and waiting.verified_at is None
    assert custom_domains_verify_pending(resolver=resolver) == 0  # nothing left that is ready


def test_the_beat_task_runs_in_public_with_the_configured_resolver(t1_public):
    from tenants.tasks import custom_domains_verify

    row = custom_domain_add(creator=t1_public, domain=HOST)
    assert custom_domains_verify() == 0  # the test resolver answers nothing
    row.refresh_from_db()
    assert row.verified_at is None and row.last_checked_at is not None


# --- the subdomain redirects buyers to the verified domain -----------------------------------
@pytest.fixture
def verified(t1_public):
    with tenant_context(t1_public):
        _product("Alpha")
    connection.set_schema_to_public()
    row = custom_domain_add(creator=t1_public, domain=HOST)
    assert custom_domain_verify(custom_domain=row, resolver=_records_resolver(row))
    return row


def test_the_subdomain_redirects_buyer_pages_permanently_keeping_path_and_query(
    verified, client_for
):
    response = client_for("t1.localhost").get("/p/alpha/?ref=mail&x=1")
    assert response.status_code == 301
    assert response["Location"] == f"http://{HOST}/p/alpha/?ref=mail&x=1"
    assert client_for("t1.localhost").head("/").status_code == 301


@pytest.mark.parametrize("path", ["/admin/", "/admin/login/", "/api/v1/", "/webhooks/stripe/"])
def test_admin_api_and_webhooks_stay_on_the_subdomain(verified, client_for, path):
    response = client_for("t1.localhost").get(path)
    assert response.status_code != 301


def test_a_post_to_the_subdomain_is_not_redirected(verified, client_for):
    response = client_for("t1.localhost").post("/checkout/alpha/start", {})
    assert response.status_code != 301


def test_the_custom_domain_itself_and_other_stores_do_not_redirect(verified, client_for):
    assert client_for(HOST).get("/").status_code == 200
    assert client_for("t2.localhost").get("/").status_code == 200


def test_removing_the_domain_stops_routing_and_redirecting(verified, client_for):
    t1 = Creator.objects.get(slug="t1")
    assert custom_domain_remove(creator=t1, custom_domain_id=verified.pk)
    assert client_for(HOST).get("/").status_code == 404
    assert client_for("t1.localhost").get("/").status_code == 200
    assert not CustomDomain.objects.exists() and not Domain.objects.filter(domain=HOST).exists()


def test_another_store_cannot_remove_a_domain_it_does_not_own(verified, client_for):
    t2 = Creator.objects.get(slug="t2")
    assert not custom_domain_remove(creator=t2, custom_domain_id=verified.pk)
    assert client_for(HOST).get("/").status_code == 200


# --- the TLS ask endpoint ----------------------------------------------------------------------
def test_the_ask_endpoint_answers_200_for_verified_domains_and_store_subdomains_only(
    t1_public, client_for
):
    pending = custom_domain_add(creator=t1_public, domain="other.example.org")
    row = custom_domain_add(creator=t1_public, domain=HOST)
    assert custom_domain_verify(custom_domain=row, resolver=_records_resolver(row))
    ask = client_for("localhost")
    assert ask.get("/tls/ask", {"domain": HOST}).status_code == 200
    assert ask.get("/tls/ask", {"domain": "SHOP.example.com."}).status_code == 200
    assert ask.get("/tls/ask", {"domain": "t2.localhost"}).status_code == 200
    assert ask.get("/tls/ask", {"domain": pending.domain}).status_code == 404
    assert ask.get("/tls/ask", {"domain": "nobody.localhost"}).status_code == 404
    assert ask.get("/tls/ask", {"domain": "www.shop.example.com"}).status_code == 404
    assert client_for(HOST).get("/tls/ask", {"domain": HOST}).status_code == 404  # platform only


@pytest.mark.parametrize(
    "garbage",
    ["", "a" * 5000, "http://x/", "[::1]", "::1", "é.", "%zz", ".", "..", "a b", "localhost:80"],
)
def test_the_ask_endpoint_answers_404_never_500_for_garbage(db, client_for, garbage):
    assert client_for("localhost").get("/tls/ask", {"domain": garbage}).status_code == 404


def test_the_ask_endpoint_refuses_undecodable_or_missing_input_without_a_500(db, client_for):
    ask = client_for("localhost")
    assert ask.get("/tls/ask").status_code == 404
    assert ask.get("/tls/ask?domain=%ff%fe.example.com").status_code == 404
    # NUL is refused by the input boundary (core) with its readable 400, before the view.
    assert ask.get("/tls/ask", {"domain": "shop\x00.example.com"}).status_code == 400


# --- the store admin's Domains page -------------------------------------------------------------
@pytest.fixture
def staff_client(tenant, hosts, client_for):
    from storefront.team import _role_apply

    # A manager: the Domains page needs the store-settings permission (support gets 403).
    user = get_user_model().objects.create_user("domains-admin", password="pw", is_staff=True)
    _role_apply(user, "manager")
    client = client_for("t1.localhost")
    client.force_login(user)
    return client


def test_the_domains_page_adds_a_domain_and_shows_its_state_and_records(staff_client):
    response = staff_client.post("/admin/domains/", {"domain": "Shop.Example.com"})
    assert response.status_code == 302
    row = CustomDomain.objects.get()
    page = staff_client.get("/admin/domains/").content.decode()
    assert 'data-state="pending"' in page and row.token in page and "edge.localhost" in page
    assert f"_storefront-verify.{HOST}" in page


@pytest.mark.parametrize(
    ("entered", "message"),
    [("192.0.2.1", "IP address"), ("x.localhost", "platform"), ("nope", "not a valid")],
)
def test_the_domains_page_explains_a_refusal_and_adds_nothing(staff_client, entered, message):
    response = staff_client.post("/admin/domains/", {"domain": entered})
    assert response.status_code == 400 and message in response.content.decode()
    assert not CustomDomain.objects.exists()


def test_the_domains_page_check_now_and_remove_act_only_on_the_stores_own_rows(staff_client):
    with schema_context("public"):
        t2 = Creator.objects.get(slug="t2")
        theirs = custom_domain_add(creator=t2, domain="other.example.org")
    staff_client.post("/admin/domains/", {"domain": HOST})
    ours = CustomDomain.objects.get(domain=HOST)
    assert staff_client.post(f"/admin/domains/{theirs.pk}/remove/").status_code == 404
    assert staff_client.post(f"/admin/domains/{theirs.pk}/check/").status_code == 404
    assert staff_client.post(f"/admin/domains/{ours.pk}/check/").status_code == 302
    ours.refresh_from_db()
    assert ours.verified_at is None and ours.last_checked_at is not None
    assert staff_client.post(f"/admin/domains/{ours.pk}/remove/").status_code == 302
    assert list(CustomDomain.objects.values_list("pk", flat=True)) == [theirs.pk]


def test_the_store_admin_home_links_to_the_domains_page(staff_client):
    page = staff_client.get("/admin/").content.decode()
    assert 'id="domains-link"' in page and 'href="/admin/domains/"' in page


def test_the_domains_page_is_for_staff_only(tenant, hosts, client_for):
    response = client_for("t1.localhost").get("/admin/domains/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


# --- removal stops routing in every process ----------------------------------------------------
@pytest.fixture
def committed_domain(django_db_setup, django_db_blocker, hosts):
    """A verified, committed custom domain for t1; everything removed afterwards."""
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        t1 = Creator.objects.get(slug="t1")
        row = custom_domain_add(creator=t1, domain=HOST)
        assert custom_domain_verify(custom_domain=row, resolver=_records_resolver(row))
        assert routing_cache.wait_listening(), "the routing listener never connected"
        try:
            yield row
        finally:
            connection.set_schema_to_public()
            CustomDomain.objects.filter(domain=HOST).delete()
            Domain.objects.filter(domain=HOST).delete()


def _in_another_process(code: str) -> None:
    db = connection.settings_dict
    url = (
        f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    script = "import django; django.setup()\n" + code
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]


def _until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_removal_in_another_process_stops_routing_here_at_once(committed_domain, client_for):
    assert client_for(HOST).get("/").status_code == 200
    assert client_for("t1.localhost").get("/").status_code == 301
    assert _until(lambda: client_for(HOST).get("/") and HOST in routing_cache._entries)
    assert "t1.localhost" in routing_cache._entries

    _in_another_process(
        "from tenants.models import Creator\n"
        "from tenants.domains import custom_domain_remove\n"
        f"assert custom_domain_remove(creator=Creator.objects.get(slug='t1'), "
        f"custom_domain_id={committed_domain.pk})\n"
    )
    # Our process made no change itself: only the NOTIFY from the other one can drop the entry.
    assert _until(lambda: HOST not in routing_cache._entries), "the cache kept the removed host"
    assert client_for(HOST).get("/").status_code == 404
    assert client_for("t1.localhost").get("/").status_code == 200  # no redirect to a dead host


def test_deleting_a_domain_in_the_platform_admin_stops_its_routing(verified, client_for):
    from django.contrib import admin

    model_admin = admin.site._registry[CustomDomain]
    model_admin.delete_queryset(None, CustomDomain.objects.filter(pk=verified.pk))
    assert client_for(HOST).get("/").status_code == 404
    assert not Domain.objects.filter(domain=HOST).exists()
    assert client_for("t1.localhost").get("/").status_code == 200


# --- the default resolver's translation of dnspython's answers (no network) ------------------
def test_the_system_resolver_tells_no_record_from_could_not_ask(monkeypatch):
    dns_resolver = pytest.importorskip("dns.resolver")
    import dns.exception
    import dns.name

    from tenants.dns import ResolverError, SystemResolver

    class Txt:
        strings = (b"storefront-verify=", b"abc")

    class Cname:
        target = dns.name.from_text("Edge.Localhost.")

    answers = {
        ("_storefront-verify.shop.example.com", "TXT"): [Txt()],
        ("shop.example.com", "CNAME"): [Cname()],
    }

    def fake_resolve(name, rdtype, lifetime=None):
        if name == "slow.example.com":
            raise dns.exception.Timeout()
        if (name, rdtype) not in answers:
            raise dns_resolver.NXDOMAIN()
        return answers[(name, rdtype)]

    monkeypatch.setattr(dns_resolver, "resolve", fake_resolve)
    resolver = SystemResolver()
    assert resolver.txt("_storefront-verify.shop.example.com") == ["storefront-verify=abc"]
    assert resolver.cname("shop.example.com") == "edge.localhost"
    assert resolver.cname("none.example.com") is None
    assert resolver.addresses("none.example.com") == set()
    with pytest.raises(ResolverError):
        resolver.txt("slow.example.com")
