"""The PDF invoice wears the store's published brand: the logo's stored raster rendition as an
image, the accent (a shade that reads on white paper) on the title, headings and rules, and the
store's name; a logo that is gone or damaged leaves the invoice drawn without it."""

from __future__ import annotations

import re
import zlib

import pytest
from django.core.files.storage import default_storage

from storefront import branding, invoice_pdf
from storefront.services import invoices
from tests import images
from tests.brand_support import publish_brand
from tests.delivery.test_invoices import _attempt_id
from tests.delivery_support import paid_order
from tests.factories import ProductFactory


def _operators(pdf: bytes) -> bytes:
    """Every stream of the file, inflated where it is compressed (the pages' drawing operators)."""
    out = []
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            out.append(zlib.decompress(match.group(1)))
        except zlib.error:
            out.append(match.group(1))
    return b"\n".join(out)


def _rg(hex_color: str) -> bytes:
    """fpdf2's fill/text colour operator for `hex_color` (its numbers: 4 places, no trailing 0)."""
    values = (int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5))
    parts = (f"{v:.4f}".rstrip("0").rstrip(".") for v in values)
    return (" ".join(parts) + " rg").encode()


@pytest.fixture
def invoice(tenant):
    order = paid_order(products=[ProductFactory(name="Photo course")])
    return invoices.invoice_issue(attempt_id=_attempt_id(order))


@pytest.fixture
def core_font(monkeypatch):
    """The PDF's core font writes text as plain strings, so the test can read it."""
    monkeypatch.setattr(invoice_pdf, "_font_path", lambda: "")


def test_the_invoice_draws_the_published_logo_accent_and_store_name(invoice, media_root, core_font):
    publish_brand()
    pdf = invoice_pdf.document_pdf(invoice)
    # The logo: one image XObject, the 640 px PNG rendition (sharp in a 60 mm box), with its
    # transparency as a soft mask when it has any.
    assert pdf.count(b"/Subtype /Image") >= 1
    assert b"/Width 640" in pdf and b"/Height 112" in pdf
    drawn = _operators(pdf)
    assert re.search(rb"/I\d+ Do", drawn), "the image is placed on the page"
    assert _rg("#7a1fa2") in drawn  # the title and headings in the accent
    assert _rg("#7a1fa2").replace(b" rg", b" RG") in drawn  # the rules in the accent
    assert b"(Store T1) Tj" in drawn and b"(Invoice) Tj" in drawn
    assert b"(Photo course) Tj" in drawn  # the frozen content is all still there


def test_a_dark_stores_light_accent_is_darkened_to_read_on_paper(invoice, media_root, core_font):
    publish_brand(accent="#7fd8c4", scheme="dark", logo=False)
    paper = branding.paper_accent("#7fd8c4")
    assert paper != "#7fd8c4" and branding.contrast(paper, "#ffffff") >= branding.AA_TEXT
    drawn = _operators(invoice_pdf.document_pdf(invoice))
    assert _rg(paper) in drawn and _rg("#7fd8c4") not in drawn
    assert b"/Subtype /Image" not in invoice_pdf.document_pdf(invoice)


def test_without_a_published_brand_the_invoice_has_the_default_accent_and_no_image(
    invoice, core_font
):
    pdf = invoice_pdf.document_pdf(invoice)
    assert b"/Subtype /Image" not in pdf
    assert _rg(branding.DEFAULT.accent) in _operators(pdf)
    assert b"(Store T1) Tj" in _operators(pdf)


@pytest.mark.parametrize("damage", ["corrupt", "missing", "foreign-name"])
def test_a_logo_that_cannot_be_read_leaves_it_out_and_the_invoice_is_still_drawn(
    invoice, media_root, core_font, damage
):
    published = publish_brand()
    found = branding.logo_file(
        branding.brand_published(), max_width=invoice_pdf._LOGO_BOX_PX[0], max_height=85
    )
    assert found is not None
    if damage == "corrupt":
        default_storage.delete(found.name)
        default_storage.save(found.name, images.upload(b"\x89PNG\r\n\x1a\n" + b"\0" * 64))
    elif damage == "missing":
        default_storage.delete(found.name)
    else:  # a record edited to name a file image_store never wrote
        published.logo = {**published.logo, "digest": "../../deliverables/x"}
        published.save()
        branding.cache.delete(branding.CACHE_KEY)
    pdf = invoice_pdf.document_pdf(invoice)
    assert pdf.startswith(b"%PDF-") and b"%%EOF" in pdf[-10:]
    assert b"/Subtype /Image" not in pdf
    assert b"(Store T1) Tj" in _operators(pdf) and _rg("#7a1fa2") in _operators(pdf)


def test_the_receipt_attaches_the_branded_invoice(invoice, media_root):
    from django.core import mail

    from storefront.services import receipts

    publish_brand()
    assert receipts.receipt_send(order_id=invoice.order_id) is True
    [(name, content, mime)] = mail.outbox[0].attachments
    assert mime == "application/pdf" and name == f"{invoice.display_number}.pdf"
    assert b"/Subtype /Image" in content and _rg("#7a1fa2") in _operators(content)
