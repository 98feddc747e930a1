"""The store admin organised by the creator's jobs (storefront/admin_site.py): sections
instead of apps, names that read right, permissions that filter, nothing ever hidden."""

from __future__ import annotations

import re

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import models
from django.test import RequestFactory

from storefront.admin_site import (
    APP_SECTIONS,
    DEFAULT_SECTION,
    SECTIONS,
    Link,
    StoreAdminSite,
    section_of,
)

CREATOR_SECTIONS = ["Sell", "Orders and customers", "Money", "Insights", "Settings"]


def _reads_right(singular: str, plural: str) -> list[str]:
    """English plural rules the stock admin gets wrong when it just appends "s"."""
    problems = []
    if re.search(r"[^aeiou]y$", singular) and plural == singular + "s":
        problems.append(f"{plural!r}: a consonant + y takes -ies")
    if re.search(r"(s|x|z|ch|sh)$", singular) and plural == singular + "s":
        problems.append(f"{plural!r}: -s, -x, -ch, -sh take -es")
    if re.search(r"(entrys|settingss|mismatchs|statuss|addresss)\b", plural):
        problems.append(f"{plural!r} is not a word")
    if singular != singular.strip() or not singular:
        problems.append(f"{singular!r} is blank or padded")
    return problems


def test_every_registered_model_reads_correctly_in_singular_and_plural():
    assert admin.site._registry, "nothing registered: the test would prove nothing"
    problems = {
        model._meta.label: found
        for model in admin.site._registry
        if (
            found := _reads_right(
                str(model._meta.verbose_name), str(model._meta.verbose_name_plural)
            )
        )
    }
    assert problems == {}
    names = {m._meta.label: str(m._meta.verbose_name_plural) for m in admin.site._registry}
    assert names["payments.LedgerEntry"] == "ledger entries"
    assert names["storefront.StoreSettings"] == "store settings"
    assert names["payments.Mismatch"] == "reconciliation mismatches"
    assert names["payments.PayoutEntry"] == "payout entries"


def test_the_plural_check_catches_what_the_stock_admin_used_to_show():
    assert _reads_right("ledger entry", "ledger entrys")
    assert _reads_right("store settings", "store settingss")
    assert _reads_right("mismatch", "mismatchs")
    assert not _reads_right("refund", "refunds")


def test_the_site_is_the_store_site_and_every_section_slug_is_known():
    assert isinstance(admin.site, StoreAdminSite)
    slugs = {s.slug for s in SECTIONS}
    assert len(slugs) == len(SECTIONS)
    assert set(APP_SECTIONS.values()) <= slugs and DEFAULT_SECTION in slugs
    # A model label is placed once at most.
    labels = [e for s in SECTIONS for e in s.entries if isinstance(e, str)]
    assert len(labels) == len(set(labels))


def test_a_model_nobody_placed_falls_into_its_apps_section_or_more():
    assert section_of("payments.Refund") == "money"
    assert section_of("storefront.Coupon") == "sell"  # an app's new model: its app's section
    assert section_of("payments.Invoice") == "money"
    assert section_of("privacy.ErasureRequest") == DEFAULT_SECTION  # a new app: "More"


def _owner(tenant):
    return get_user_model().objects.get(username="owner")


def _request(user, host="t1.localhost"):
    request = RequestFactory(HTTP_HOST=host).get("/admin/")
    request.user = user
    return request


def test_the_owner_sees_the_creators_sections_in_order_and_every_model_once(tenant):
    owner = _owner(tenant)
    assert owner.is_superuser
    sections = admin.site.get_app_list(_request(owner))
    names = [s["name"] for s in sections]
    assert names[:5] == CREATOR_SECTIONS
    assert names[-1] == "Technical records (for support)"
    listed = [m["model"]._meta.label for s in sections for m in s["models"] if not m.get("is_link")]
    registered = [
        m._meta.label
        for m, ma in admin.site._registry.items()
        if ma.has_module_permission(_request(owner))
    ]
    assert sorted(listed) == sorted(registered)
    by_name = {s["name"]: s for s in sections}
    settings_rows = [m["name"] for m in by_name["Settings"]["models"]]
    assert "Audit trail" in settings_rows and "Domains" in settings_rows
    technical = [
        m["model"]._meta.label for m in by_name["Technical records (for support)"]["models"]
    ]
    assert {"payments.ChargeAttempt", "payments.LedgerEntry", "payments.WebhookEvent"} <= set(
        technical
    )
    assert by_name["Technical records (for support)"]["collapsed"] is True
    money = [m["name"] for m in by_name["Money"]["models"]]
    assert "Disputes (chargebacks)" in money and "Refunds" in money


def test_an_unplaced_model_still_shows_in_a_section(tenant, monkeypatch):
    """A model registered tomorrow without a line in SECTIONS is never hidden."""
    import storefront.admin_site as site_module

    owner = _owner(tenant)
    trimmed = tuple(
        site_module.Section(
            s.slug,
            s.name,
            s.description,
            tuple(e for e in s.entries if e != "payments.Refund"),
            s.collapsed,
        )
        for s in SECTIONS
    )
    monkeypatch.setattr(site_module, "SECTIONS", trimmed)
    sections = {s["app_label"]: s for s in admin.site.get_app_list(_request(owner))}
    assert "Refunds" in [m["name"] for m in sections["money"]["models"]]


def test_a_user_sees_only_the_sections_and_links_their_view_permissions_allow(tenant):
    clerk = get_user_model().objects.create_user("clerk", password="clerk-pass-123", is_staff=True)
    clerk.user_permissions.add(
        Permission.objects.get(codename="view_order", content_type__app_label="storefront"),
        Permission.objects.get(codename="view_refund", content_type__app_label="payments"),
    )
    clerk = get_user_model().objects.get(pk=clerk.pk)  # fresh permission cache
    sections = admin.site.get_app_list(_request(clerk))
    shown = {s["name"]: [m["name"] for m in s["models"]] for s in sections}
    # Dashboard and domains pages are guarded by is_staff alone today: their links follow.
    assert shown == {
        "Orders and customers": ["Orders"],
        "Money": ["Refunds"],
        "Insights": ["Dashboard", "What each figure means"],
        "Settings": ["Domains"],
    }
    # The disputes list needs its own view permission.
    clerk.user_permissions.add(
        Permission.objects.get(codename="view_dispute", content_type__app_label="payments")
    )
    clerk = get_user_model().objects.get(pk=clerk.pk)
    money = next(s for s in admin.site.get_app_list(_request(clerk)) if s["name"] == "Money")
    assert "Disputes (chargebacks)" in [m["name"] for m in money["models"]]


def test_the_home_the_section_pages_and_the_old_app_urls_all_answer(tenant, client_for):
    client = client_for("t1.localhost")
    assert client.login(username="owner", password="owner-pass-123")
    home = client.get("/admin/").content.decode()
    for name in CREATOR_SECTIONS:
        assert f">{name}</a>" in home, name
    assert "Ledger entrys" not in home and "Store settingss" not in home
    assert "Mismatchs" not in home
    assert '<details class="technical-records">' in home
    for slug in ("sell", "orders", "money", "insights", "settings", "technical"):
        assert client.get(f"/admin/section/{slug}/").status_code == 200, slug
    assert client.get("/admin/section/nothing-here/").status_code == 404
    for app in ("payments", "storefront", "offers", "analytics", "audit", "partners"):
        assert client.get(f"/admin/{app}/").status_code == 200, app
    assert client.get("/admin/payments/ledgerentry/").status_code == 200


def test_links_name_a_real_page_and_a_real_model():
    from django.apps import apps

    for section in SECTIONS:
        for entry in section.entries:
            if isinstance(entry, Link):
                if entry.model:
                    assert issubclass(apps.get_model(entry.model), models.Model)
            else:
                apps.get_model(entry)  # raises on a typo


def test_breadcrumbs_name_the_section_not_the_app(tenant, client_for):
    client = client_for("t1.localhost")
    assert client.login(username="owner", password="owner-pass-123")
    ledger = client.get("/admin/payments/ledgerentry/").content.decode()
    assert '<a href="/admin/section/technical/">Technical records (for support)</a>' in ledger
    product = client.get("/admin/storefront/product/add/").content.decode()
    assert '<a href="/admin/section/sell/">Sell</a>' in product
    assert '<a href="/admin/storefront/">Storefront</a>' not in product
    refunds = client.get("/admin/payments/refund/").content.decode()
    assert '<a href="/admin/section/money/">Money</a>' in refunds
