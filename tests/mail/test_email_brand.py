"""Every HTML email to a buyer (receipt, follow-up offer, checkout reminder) extends one base
template that carries the store's logo (an absolute URL to its stored PNG/JPEG rendition, the
store's name as alt text, width and height set) and its accent; the plain-text parts carry no
brand and read the same with or without one."""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

from django.conf import settings
from django.core import mail
from django.template.loader import render_to_string
from django.test import Client
from PIL import Image

from storefront import branding
from storefront.services import followups, receipts
from storefront.services import mail as store_mail
from tests.brand_support import publish_brand
from tests.delivery_support import paid_order
from tests.factories import ProductFactory
from tests.followups.helpers import T0, catalog
from tests.followups.helpers import paid_order as followup_order

IMG = re.compile(
    r'<img src="(?P<url>[^"]+)" alt="(?P<alt>[^"]*)" width="(?P<w>\d+)" height="(?P<h>\d+)"'
)


def _html(message) -> str:
    [(html, mime)] = message.alternatives
    assert mime == "text/html"
    return html


def _logo_of(html: str) -> dict:
    found = IMG.search(html)
    assert found, html[:800]
    return found.groupdict()


def _served(url: str) -> Image.Image:
    """The logo's URL, fetched from the store's host as a mail client would."""
    host, path = re.match(r"https://([^/]+)(/.*)", url).groups()
    response = Client(HTTP_HOST=host).get(path)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    return Image.open(io.BytesIO(b"".join(response.streaming_content)))


def test_the_receipt_shows_the_logo_from_the_store_with_its_name_size_and_the_accent(
    tenant, media_root
):
    publish_brand(creator="Mara Lind")
    order = paid_order(products=[ProductFactory(name="Photo course")])
    assert receipts.receipt_send(order_id=order.pk) is True
    html = _html(mail.outbox[0])
    logo = _logo_of(html)
    assert logo["url"].startswith("https://t1.localhost/m/img/") and logo["url"].endswith(".png")
    assert logo["alt"] == "Store T1"  # the store's name
    # Fitted into 200 × 56 px at the logo's own proportions (820 × 144).
    assert (int(logo["w"]), int(logo["h"])) == (200, 35)
    assert _served(logo["url"]).size == (640, 112)  # twice the width shown, for sharp screens
    assert "border-bottom: 4px solid #7a1fa2" in html and "Mara Lind" in html
    assert html.count("<html") == 1 and html.index('id="brand-header"') < html.index("<h1")


def test_without_a_logo_the_emails_header_is_the_stores_name(tenant):
    publish_brand(logo=False)
    order = paid_order(products=[ProductFactory()])
    receipts.receipt_send(order_id=order.pk)
    html = _html(mail.outbox[0])
    assert "<img" not in html
    assert re.search(r'id="brand-header"[^>]*>Store T1<', html)


def test_the_plain_text_receipt_is_the_same_with_or_without_a_brand(tenant, media_root):
    def text(order) -> str:
        assert receipts.receipt_send(order_id=order.pk) is True
        body = mail.outbox[-1].body
        body = body.replace(order.token[:8], "TOKEN")
        body = re.sub(r"https?://\S+", "URL", body)
        return re.sub(r"INV-\d+", "INV", body)

    product = ProductFactory(name="Photo course")
    plain = text(paid_order(products=[product], email="one@example.com"))
    publish_brand(creator="Mara Lind")
    branded = text(paid_order(products=[product], email="two@example.com"))
    assert branded == plain
    assert "Total charged" in branded and "/m/img/" not in branded and "#7a1fa2" not in branded


def test_the_follow_up_email_wears_the_same_header_and_its_button_the_accent(tenant, media_root):
    publish_brand(accent="#7a1fa2")
    core, _, _ = catalog()
    followup_order("buyer@example.com", core)
    assert followups.followups_send_due(now=T0 + dt.timedelta(days=30)) >= 1
    html = _html(mail.outbox[0])
    logo = _logo_of(html)
    assert logo["alt"] == "Store T1" and logo["url"].startswith("https://t1.localhost/m/img/")
    assert "background: #7a1fa2; color: #ffffff;" in html
    assert "/m/img/" not in mail.outbox[0].body


def test_the_checkout_reminder_extends_the_same_base_with_the_accent_button(tenant, media_root):
    publish_brand(accent="#7a1fa2")
    product = ProductFactory(name="Photo course")
    context = {
        **store_mail.brand_context(base_url="https://t1.localhost"),
        "subject": "You left Photo course in your checkout",
        "product": product,
        "store": type("S", (), {"prices_include_tax": False})(),
        "link": "https://t1.localhost/r/x",
        "send": type("F", (), {"step": 1})(),
        "unsubscribe_url": "https://t1.localhost/u/x",
    }
    html = render_to_string("storefront/email/recovery.html", context)
    assert _logo_of(html)["alt"] == "Store T1"
    assert "background: #7a1fa2; color: #ffffff;" in html and "#1a56db" not in html


def test_every_buyer_html_email_extends_the_one_base():
    folder = Path(settings.BASE_DIR) / "templates" / "storefront" / "email"
    htmls = sorted(p.name for p in folder.glob("*.html") if not p.name.startswith("_"))
    assert htmls == ["charge_receipt.html", "followup.html", "receipt.html", "recovery.html"]
    for name in htmls:
        assert (folder / name).read_text().startswith('{% extends "storefront/email/_base.html" %}')


def test_the_logo_rendition_is_named_only_as_image_store_names_it():
    brand = branding.Brand(
        logo={"digest": "../x", "widths": [160], "width": 400, "height": 80, "fallback": "png"}
    )
    assert branding.logo_file(brand, max_width=200, max_height=56) is None
    assert (
        branding.logo_file(branding.Brand(logo={"digest": "a" * 20}), max_width=1, max_height=1)
        is None
    )
