"""Invoices and credit notes as PDF (fpdf2, pure Python), drawn from the frozen document."""

from __future__ import annotations

import logging
import os

from django.conf import settings
from fpdf import FPDF

from core.money import Money
from storefront.delivery_models import CreditNote, Invoice
from storefront.tax.providers import REVERSE_CHARGE_NOTE

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


def document_pdf(document: Invoice | CreditNote) -> bytes:
    """The document as PDF bytes; the same document always draws the same content."""
    is_credit = isinstance(document, CreditNote)
    pdf = _Pdf()
    pdf.set_title(document.display_number)
    pdf.set_creation_date(document.issued_at)
    pdf.add_page()
    seller, buyer = document.seller, document.buyer
    pdf.font(18, bold=True)
    pdf.cell(0, 10, "Credit note" if is_credit else "Invoice", new_x="LMARGIN", new_y="NEXT")
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
    pdf.font(10, bold=True)
    pdf.cell(90, 6, "From", new_x="LMARGIN", new_y="NEXT")
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
    pdf.font(10, bold=True)
    pdf.cell(90, 6, "To", new_x="LEFT", new_y="NEXT")
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
    pdf.ln(3)
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
