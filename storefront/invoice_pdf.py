"""Invoices and credit notes as PDF (fpdf2, pure Python), drawn from the frozen document.

The letterhead wears the store's published brand (storefront.branding): the logo's stored PNG
or JPEG rendition, the store's name, and the accent for the title, headings and rules (as
`paper_accent`: a shade that reads on white paper). The figures, parties and statements are
the frozen document's; the look follows the brand published when the PDF is drawn, so a
re-downloaded invoice carries today's logo and the same content. A logo that is missing or
cannot be decoded is left out (the store's name stands alone): an invoice is never refused
for its decoration.
"""

from __future__ import annotations

import io
import logging
import os

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection
from fpdf import FPDF
from PIL import Image

from core.money import Money
from storefront import branding
from storefront.delivery_models import CreditNote, Invoice
from storefront.tax.providers import REVERSE_CHARGE_NOTE

logger = logging.getLogger(__name__)

# The logo's box on the letterhead, in mm (the rendition is picked sharp at about 270 dpi).
LOGO_BOX_MM = (60.0, 16.0)
_LOGO_BOX_PX = (320, 85)
_MM_PER_PX = LOGO_BOX_MM[0] / _LOGO_BOX_PX[0]
_INK = (26, 26, 26)

# fpdf2's font subsetting logs a line per glyph table at INFO: not ours to keep.
logging.getLogger("fontTools").setLevel(logging.WARNING)

# A Unicode TrueType font if the machine has one (Debian's fonts-dejavu-core); otherwise the
# PDF core font, which knows only Latin-1, with anything else replaced.
_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
)


def _font_path() -> str:
    configured = getattr(settings, "INVOICE_FONT_PATH", "")
    for path in (configured, *_FONT_CANDIDATES):
        if path and os.path.isfile(path):
            return path
    return ""


def _amount(minor: int, currency: str) -> str:
    """ "49.00 EUR": ISO codes, not symbols (they read the same in every font)."""
    text = str(Money(abs(minor), currency))
    digits = "".join(ch for ch in text if ch.isdigit() or ch in ".,")
    return f"{'-' if minor < 0 else ''}{digits} {currency}"


class _Pdf(FPDF):
    def __init__(self) -> None:
        super().__init__(format="A4")
        path = _font_path()
        if path:
            self.add_font("body", "", path)
            bold = path.replace("DejaVuSans.ttf", "DejaVuSans-Bold.ttf")
            self.add_font("body", "B", bold if os.path.isfile(bold) else path)
            self.family, self.unicode = "body", True
        else:
            self.family, self.unicode = "helvetica", False
        self.set_auto_page_break(auto=True, margin=15)
        self.accent: tuple[int, int, int] = _INK

    def text_of(self, value: object) -> str:
        text = str(value or "")
        if self.unicode:
            return text
        return text.encode("latin-1", "replace").decode("latin-1")

    def font(self, size: float, bold: bool = False) -> None:
        self.set_font(self.family, "B" if bold else "", size)

    def row(self, *cells: tuple[str, float, str], bold: bool = False) -> None:
        self.font(9.5, bold)
        for text, width, align in cells:
            self.cell(width, 6, self.text_of(text), align=align)
        self.ln(6)

    def heading(self, text: str, *, size: float, width: float = 0, **kwargs) -> None:
        """Bold, in the brand's accent; the ink comes back for what follows."""
        self.set_text_color(*self.accent)
        self.font(size, bold=True)
        self.cell(width, size * 0.55, self.text_of(text), **kwargs)
        self.set_text_color(*_INK)

    def rule(self, weight: float = 0.6) -> None:
        self.set_draw_color(*self.accent)
        self.set_line_width(weight)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())


def _rgb(hex_color: str) -> tuple[int, int, int]:
    return tuple(int(hex_color[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def _logo(brand: branding.Brand) -> tuple[Image.Image, float, float] | None:
    """The decoded logo and its size in mm, or None (no logo, file gone, or damaged)."""
    found = branding.logo_file(brand, max_width=_LOGO_BOX_PX[0], max_height=_LOGO_BOX_PX[1])
    if found is None:
        return None
    try:
        with default_storage.open(found.name, "rb") as handle:
            data = handle.read(8 * 1024 * 1024 + 1)
        if len(data) > 8 * 1024 * 1024:
            raise ValueError("logo rendition too large")
        image = Image.open(io.BytesIO(data))
        image.load()
        if image.mode not in ("RGB", "RGBA", "L"):
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        logger.warning("invoice drawn without the logo %s: %s", found.name, exc)
        return None
    return image, found.width * _MM_PER_PX, found.height * _MM_PER_PX


def _letterhead(pdf: _Pdf, brand: branding.Brand, store_name: str) -> None:
    """The logo at the left (if it can be drawn), the store's name, an accent rule below."""
    top = pdf.get_y()
    logo = _logo(brand)
    band = 9.0
    if logo is not None:
        image, width, height = logo
        pdf.image(image, x=pdf.l_margin, y=top, w=width, h=height)
        band = max(band, height)
    if store_name:
        pdf.set_xy(pdf.l_margin, top + (band - 9.0) / 2)
        pdf.heading(store_name, size=13, align="R" if logo else "L")
    pdf.set_y(top + band + 2)
    pdf.rule(0.8)
    pdf.ln(5)


def document_pdf(
    document: Invoice | CreditNote,
    *,
    brand: branding.Brand | None = None,
    store_name: str | None = None,
) -> bytes:
    """The document as PDF bytes; the same document and brand always draw the same content.
    `brand` and `store_name` default to the current store's published brand and name."""
    is_credit = isinstance(document, CreditNote)
    seller, buyer = document.seller, document.buyer
    brand = brand or branding.brand_published()
    if store_name is None:
        store_name = getattr(getattr(connection, "tenant", None), "display_name", "") or ""
    pdf = _Pdf()
    pdf.accent = _rgb(branding.paper_accent(brand.accent))
    pdf.set_text_color(*_INK)
    pdf.set_title(document.display_number)
    pdf.set_creation_date(document.issued_at)
    pdf.add_page()
    _letterhead(pdf, brand, store_name or str(seller.get("name") or ""))
    pdf.heading("Credit note" if is_credit else "Invoice", size=18)
    pdf.ln(10)
    pdf.font(10)
    meta = [
        ("Number", document.display_number),
        ("Date", document.issued_at.strftime("%Y-%m-%d")),
    ]
    if is_credit:
        meta.append(("For invoice", document.invoice.display_number))
        meta.append(("Refund", document.refund_ref))
    for label, value in meta:
        pdf.cell(30, 6, pdf.text_of(label))
        pdf.cell(0, 6, pdf.text_of(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)

    top = pdf.get_y()
    pdf.heading("From", size=10, width=90, new_x="LMARGIN", new_y="NEXT")
    pdf.font(10)
    seller_lines = [seller.get("name"), *str(seller.get("address") or "").splitlines()]
    if seller.get("tax_id"):
        seller_lines.append(f"VAT / tax ID: {seller['tax_id']}")
    if seller.get("email"):
        seller_lines.append(seller["email"])
    for text in seller_lines:
        if text:
            pdf.cell(90, 5, pdf.text_of(text), new_x="LMARGIN", new_y="NEXT")
    bottom = pdf.get_y()
    pdf.set_xy(110, top)
    pdf.heading("To", size=10, width=90, new_x="LEFT", new_y="NEXT")
    pdf.font(10)
    place = "-".join(p for p in (buyer.get("country"), buyer.get("region")) if p)
    buyer_lines = [buyer.get("email"), place]
    if buyer.get("vat_id"):
        buyer_lines.append(f"VAT ID: {buyer['vat_id']}")
    for text in buyer_lines:
        if text:
            pdf.cell(90, 5, pdf.text_of(text), new_x="LEFT", new_y="NEXT")
    pdf.set_xy(pdf.l_margin, max(bottom, pdf.get_y()) + 6)

    currency = document.currency
    widths = (80, 25, 25, 25, 25)
    pdf.row(
        ("Item", widths[0], "L"),
        ("Tax rate", widths[1], "R"),
        ("Net", widths[2], "R"),
        ("Tax", widths[3], "R"),
        ("Total", widths[4], "R"),
        bold=True,
    )
    pdf.rule(0.4)
    sign = -1 if is_credit else 1
    taxes: dict[tuple[str, str], list[int]] = {}
    for line in document.lines:
        rate = f"{line.get('tax_name', 'Tax')} {line['tax_rate'].rstrip('0').rstrip('.')}%"
        pdf.row(
            (line["description"][:60], widths[0], "L"),
            (rate, widths[1], "R"),
            (_amount(sign * line["net"], currency), widths[2], "R"),
            (_amount(sign * line["tax"], currency), widths[3], "R"),
            (_amount(sign * line["total"], currency), widths[4], "R"),
        )
        bucket = taxes.setdefault((rate, line.get("tax_name", "Tax")), [0, 0])
        bucket[0] += line["net"]
        bucket[1] += line["tax"]
    pdf.ln(1)
    pdf.rule(0.4)
    pdf.ln(2)
    for (rate, _name), (net, tax) in sorted(taxes.items()):
        pdf.row(
            (f"{rate} on {_amount(sign * net, currency)}", sum(widths[:4]), "R"),
            (_amount(sign * tax, currency), widths[4], "R"),
        )
    pdf.row(("Net", sum(widths[:4]), "R"), (_amount(sign * document.net_amount, currency), 25, "R"))
    pdf.row(("Tax", sum(widths[:4]), "R"), (_amount(sign * document.tax_amount, currency), 25, "R"))
    pdf.row(
        ("Total refunded" if is_credit else "Total paid", sum(widths[:4]), "R"),
        (_amount(sign * document.total_amount, currency), 25, "R"),
        bold=True,
    )
    statements = document_statements(document)
    if statements:
        pdf.ln(4)
        pdf.font(9)
    for text in statements:
        pdf.multi_cell(0, 5, pdf.text_of(text), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def document_statements(document: Invoice | CreditNote) -> list[str]:
    """What the document must say below its totals: the reverse-charge statement when the
    buyer's valid EU VAT ID meant no VAT was charged (storefront/tax/providers.py)."""
    if document.buyer.get("reverse_charge") or any(
        line.get("reverse_charge") for line in document.lines
    ):
        return [REVERSE_CHARGE_NOTE]
    return []
