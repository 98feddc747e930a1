"""A store's brand: an accent colour that must pass WCAG 2.2 AA (refused with the reason and a
shade that passes), a typeface, light or dark, a logo and the creator's face; edited as a
draft, previewed at phone and desktop width, and only then published to buyers."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEntry
from offers.models import OfferKind
from storefront import branding
from storefront.models import Product, StoreBrand
from tests import images
from tests.factories import OfferFactory, ProductFactory


@pytest.fixture
def owner(tenant):
    client = Client(HTTP_HOST="t1.localhost")
    client.force_login(get_user_model().objects.get(email="owner@t1.example"))
    return client


@pytest.fixture
def product(tenant):
    return ProductFactory(slug="course", name="Photo course", status=Product.Status.ACTIVE)


def _brand_form(**overrides) -> dict:
    data = {
        "accent_color": "#7a1fa2",
        "scheme": "light",
        "typeface": "lora",
        "logo_alt": "",
        "creator_name": "Mara Lind",
    }
    data.update(overrides)
    return data


def _buyer_page(path: str = "/p/course/") -> str:
    return Client(HTTP_HOST="t1.localhost").get(path).content.decode()


@pytest.mark.parametrize(
    ("accent", "scheme", "passes"),
    [
        ("#0b57d0", "light", True),  # the default blue: 6.0:1 on white
        ("#7a1fa2", "light", True),
        ("#ffcc00", "light", False),  # yellow links on white: 1.5:1
        ("#4f8cff", "light", False),  # 3.3:1: fine for large text only, not AA for links
        ("#0b57d0", "dark", False),  # dark blue on near-black: 3.0:1
        ("#8ab4f8", "dark", True),
        ("#767676", "light", True),  # 4.54:1, just over
        ("#777777", "light", False),  # 4.48:1, just under
    ],
)
def test_the_accent_is_held_to_wcag_aa_against_the_background_and_its_button_text(
    accent, scheme, passes
):
    problems = branding.accent_problems(accent, scheme)
    assert (problems == []) is passes, problems
    if not passes:
        suggestion = branding.accent_suggestion(accent, scheme)
        assert suggestion and branding.accent_problems(suggestion, scheme) == []
        assert problems[-1].startswith(suggestion)


def test_contrast_matches_the_wcag_formula_at_its_known_points():
    assert branding.contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert branding.contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)
    assert branding.contrast("#ffffff", "#ffffff") == pytest.approx(1.0)


def test_the_admin_refuses_a_failing_accent_and_says_why_and_saves_nothing(owner, product):
    response = owner.post("/admin/brand/", _brand_form(accent_color="#FFCC00"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Not saved: correct the fields marked below." in page
    assert "have a contrast of 1.5" in page and "WCAG 2.2 AA needs at least 4.5:1" in page
    assert "is the nearest shade of this colour that passes" in page
    assert list(StoreBrand.objects.values_list("accent_color", flat=True)) in ([], ["#0b57d0"])
    assert not AuditEntry.objects.filter(action="storefront.brand.draft").exists()


@pytest.mark.parametrize(
    ("upload", "reason"),
    [
        (lambda: images.upload(images.SVG, "logo.svg", "image/svg+xml"), "SVG images"),
        (lambda: images.upload(images.animated_gif(), "l.gif", "image/gif"), "animated image"),
        (lambda: images.upload(b"hello", "logo.png", "image/png"), "not an image we can read"),
    ],
)
def test_a_bad_logo_is_refused_and_nothing_is_stored(owner, product, media_root, upload, reason):
    response = owner.post("/admin/brand/", _brand_form(logo=upload(), logo_alt="Mara Lind"))
    assert response.status_code == 200 and reason in response.content.decode()
    assert not StoreBrand.objects.filter(stage="draft").exclude(logo={}).exists()
    assert not media_root.exists() or not any(media_root.rglob("*.*"))


def test_a_logo_needs_its_text(owner, product, media_root):
    logo = images.upload(images.photo_bytes(600, 200, "PNG"), "logo.png", "image/png")
    response = owner.post("/admin/brand/", _brand_form(logo=logo))
    assert response.status_code == 200
    assert "Say what the logo shows" in response.content.decode()


def test_a_draft_is_previewed_but_buyers_see_it_only_once_published(owner, product, media_root):
    logo = images.upload(images.photo_bytes(600, 200, "PNG"), "logo.png", "image/png")
    saved = owner.post(
        "/admin/brand/", _brand_form(logo=logo, logo_alt="Mara Lind Photography", scheme="light")
    )
    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert "/brand/" not in _buyer_page()  # still the default look for buyers

    preview = owner.get("/admin/brand/preview/product/?product=course")
    assert preview.status_code == 200
    html = preview.content.decode()
    assert '<link rel="stylesheet" href="/brand/7a1fa2-lora-light.css">' in html
    assert 'alt="Mara Lind Photography"' in html and "lora-latin-400-normal.woff2" in html
    # The admin's own page may frame it; no other site may.
    assert "frame-ancestors 'self'" in preview["Content-Security-Policy"]
    assert preview["X-Frame-Options"] == "SAMEORIGIN"
    admin_page = owner.get("/admin/brand/")
    assert "frame-src 'self'" in admin_page["Content-Security-Policy"]
    body = admin_page.content.decode()
    assert 'href="/admin/brand/"' in owner.get("/admin/").content.decode()  # found from home
    assert 'id="preview-phone" width="375"' in body and 'id="preview-desktop" width="1280"' in body

    published = owner.post("/admin/brand/", {"action": "publish"})
    assert published.status_code == 302
    page = _buyer_page()
    assert '<link rel="stylesheet" href="/brand/7a1fa2-lora-light.css">' in page
    assert 'alt="Mara Lind Photography"' in page
    entry = AuditEntry.objects.get(action="storefront.brand.publish")
    assert entry.changes["accent_color"][-1] == "#7a1fa2"


def test_a_dark_store_is_dark_on_every_buyer_page(owner, product):
    owner.post("/admin/brand/", _brand_form(accent_color="#8ab4f8", scheme="dark"))
    owner.post("/admin/brand/", {"action": "publish"})
    for path in ("/", "/p/course/", "/checkout/course/", "/no-such-page/"):
        assert '<html lang="en" class="scheme-dark">' in _buyer_page(path), path


def test_the_brand_stylesheet_carries_the_colours_and_is_cached_for_a_year(tenant):
    response = Client(HTTP_HOST="t1.localhost").get("/brand/7a1fa2-atkinson-light.css")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/css")
    css = response.content.decode()
    assert "--accent:#7a1fa2;" in css and "--on-accent:#ffffff;" in css
    assert '--font:"Atkinson Hyperlegible"' in css
    assert "immutable" in response["Cache-Control"]
    for bad in ("7a1fa2-comic-light", "zzzzzz-inter-light", "7a1fa2-inter-sepia"):
        assert Client(HTTP_HOST="t1.localhost").get(f"/brand/{bad}.css").status_code == 404


def test_the_published_brand_costs_the_product_page_no_query(owner, product):
    owner.post("/admin/brand/", _brand_form())
    owner.post("/admin/brand/", {"action": "publish"})
    buyer = Client(HTTP_HOST="t1.localhost")
    buyer.get("/p/course/")  # fills the cache
    with CaptureQueriesContext(connection) as queries:
        page = buyer.get("/p/course/").content.decode()
    assert "7a1fa2-lora-light.css" in page
    assert not [q for q in queries.captured_queries if "storebrand" in q["sql"]]


def test_checkout_shows_the_creators_name_and_the_upsell_preview_renders(owner, product):
    owner.post("/admin/brand/", _brand_form(creator_name="Mara Lind"))
    owner.post("/admin/brand/", {"action": "publish"})
    assert "by Mara Lind" in _buyer_page("/checkout/course/")
    OfferFactory(
        kind=OfferKind.UPSELL,
        trigger_product=product,
        product=ProductFactory(slug="presets"),
        headline="Add the presets",
    )
    for page in ("index", "product", "checkout", "upsell"):
        response = owner.get(f"/admin/brand/preview/{page}/?product=course")
        assert response.status_code == 200, page
    assert (
        "Add the presets"
        in owner.get("/admin/brand/preview/upsell/?product=course").content.decode()
    )


def test_only_the_stores_staff_see_the_brand_page_and_previews(tenant, product):
    anonymous = Client(HTTP_HOST="t1.localhost")
    for path in ("/admin/brand/", "/admin/brand/preview/product/?product=course"):
        response = anonymous.get(path)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert anonymous.post("/admin/brand/", {"action": "publish"}).status_code == 302
    assert not StoreBrand.objects.filter(stage="published").exists()


def test_the_receipt_email_wears_the_published_brand(owner, product):
    from django.core import mail

    from storefront.models import Customer
    from storefront.services import receipts
    from tests.orders import at, make_order

    owner.post("/admin/brand/", _brand_form(creator_name="Mara Lind"))
    owner.post("/admin/brand/", {"action": "publish"})
    customer = Customer.objects.create(email="buyer@example.com")
    order, _ = make_order(
        customer, visitor="v1", source="", paid_at=at(3, 1), lines=[("core", product, None, 4900)]
    )
    assert receipts.receipt_send(order_id=order.pk) is True
    html, mime = mail.outbox[0].alternatives[0]
    assert mime == "text/html"
    assert "#7a1fa2" in html and "Mara Lind" in html
    assert "Total charged" in mail.outbox[0].body  # the plain-text part stays


def test_the_upsell_preview_is_taxed_as_the_live_page_for_the_sample_buyer_it_names(owner, product):
    """The live page taxes the upsell for the order's place (offer_line_price); the preview
    does the same for a sample buyer's country, says which, and refuses an unknown one."""
    from storefront.models import StoreSettings
    from storefront.pricing import Jurisdiction, offer_line_price
    from tests.factories import TaxRateFactory

    TaxRateFactory(country="DE", rate="19.000", name="VAT")
    offer = OfferFactory(
        kind=OfferKind.UPSELL,
        trigger_product=product,
        product=ProductFactory(slug="presets"),
        price_amount=1900,
        headline="Add the presets",
    )
    live, name = offer_line_price(kind="upsell", offer=offer, jurisdiction=Jurisdiction("DE"))
    assert (live.tax.amount, name) == (361, "VAT")

    def tax_cell(query: str) -> tuple[str, str]:
        response = owner.get(f"/admin/brand/preview/upsell/?product=course{query}")
        assert response.status_code == 200
        html = response.content.decode()
        row = re.search(r"<th scope=\"row\">([^<]*)</th>\s*<td[^>]*id=\"offer-tax\">([^<]*)<", html)
        note = re.search(r'id="preview-tax">([^<]*)<', html).group(1)
        return row.group(1) + " = " + row.group(2), note

    row, note = tax_cell("&country=DE")
    assert row.startswith("VAT 19%") and "3.61" in row, row
    assert note.startswith("Preview: tax as for a buyer in Germany.")
    row, note = tax_cell("&country=US")
    assert "0.00" in row and "buyer in United States" in note
    StoreSettings.current()  # the row exists: a committing test may have emptied the table
    StoreSettings.objects.update(tax_country="DE")
    row, note = tax_cell("")  # no country asked: the store's own
    assert "3.61" in row and "buyer in Germany" in note
    refused = owner.get("/admin/brand/preview/upsell/?product=course&country=XX")
    assert refused.status_code == 400
    assert "Choose the country you live in." in refused.content.decode()
    # The admin's page offers the choice and passes it to both frames.
    admin = owner.get("/admin/brand/?page=upsell&product=course&country=FR").content.decode()
    assert 'id="id_preview_country"' in admin and 'value="FR" selected' in admin
    assert "/admin/brand/preview/upsell/?country=FR&amp;product=course" in admin
