"""A store's brand: accent colour, typeface, light or dark, logo and the creator's face.

Buyers see the published brand; the creator edits a draft, previews it at phone and desktop
width in the admin and publishes it (`brand_publish`). The published brand is cached (the
cache's keys are per tenant), so a branded page costs no query; publishing replaces it.

The colour reaches the page as CSS custom properties in a stylesheet whose URL carries the
values (`/brand/<hex>-<typeface>-<scheme>.css`, `brand_css`): the page's CSP allows no inline
style, and a URL that names its content can be cached for a year by every browser and proxy.

The accent is used for links and focus rings on the page's background and behind the text of
buttons, so `accent_problems` refuses a colour that fails WCAG 2.2 AA (4.5:1 for text) against
either, and names a shade that passes.
"""

from __future__ import annotations

import dataclasses
import re

from django.core.cache import cache
from django.db import connection, transaction

from storefront.media import Picture

CACHE_KEY = "storefront:brand:v1"
CACHE_SECONDS = 3600
AA_TEXT = 4.5
HEX = re.compile(r"^#[0-9a-f]{6}$")

# The page's own colours in each scheme (store.css says the same: keep them in step).
BACKGROUND = {"light": "#ffffff", "dark": "#121212"}
INK = {"light": "#1a1a1a", "dark": "#ececec"}

# Self-hosted WOFF2 latin subsets (storefront/static/storefront/fonts/, OFL-licensed, from
# the @fontsource npm packages): (CSS family, file stem). System needs no download.
FONTS = {
    "system": ("", ""),
    "inter": ("Inter", "inter"),
    "lora": ("Lora", "lora"),
    "atkinson": ("Atkinson Hyperlegible", "atkinson-hyperlegible"),
}
FALLBACK_STACK = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif'
SERIF_STACK = 'Georgia, "Times New Roman", serif'


def _channel(c: int) -> float:
    v = c / 255
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def luminance(hex_color: str) -> float:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast(a: str, b: str) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def on_accent(accent: str) -> str:
    """The text colour on an accent-coloured button: white or near-black, whichever reads."""
    return "#ffffff" if contrast(accent, "#ffffff") >= contrast(accent, "#111111") else "#111111"


def _shift(hex_color: str, factor: float) -> str:
    """Darker (factor < 1) or lighter (> 1, towards white) in sRGB."""
    rgb = [int(hex_color[i : i + 2], 16) for i in (1, 3, 5)]
    if factor <= 1:
        out = [round(c * factor) for c in rgb]
    else:
        out = [round(c + (255 - c) * (factor - 1)) for c in rgb]
    return "#" + "".join(f"{max(0, min(255, c)):02x}" for c in out)


def accent_hover(accent: str, scheme: str) -> str:
    return _shift(accent, 0.8) if scheme == "light" else _shift(accent, 1.2)


def _passes(accent: str, scheme: str) -> bool:
    return (
        contrast(accent, BACKGROUND[scheme]) >= AA_TEXT
        and contrast(accent, on_accent(accent)) >= AA_TEXT
    )


def accent_suggestion(accent: str, scheme: str) -> str | None:
    """The nearest shade of the same hue that passes (darker on light, lighter on dark)."""
    sign = -1 if scheme == "light" else 1
    for k in range(1, 40):
        candidate = _shift(accent, 1 + sign * k / 40)
        if _passes(candidate, scheme):
            return candidate
    return None


def accent_problems(accent: str, scheme: str) -> list[str]:
    """Why this accent fails WCAG 2.2 AA on this scheme ([] when it passes)."""
    if not HEX.match(accent or ""):
        return ["Enter the colour as # and six hexadecimal digits, like #0b57d0."]
    problems = []
    bg = BACKGROUND[scheme]
    ratio = contrast(accent, bg)
    if ratio < AA_TEXT:
        problems.append(
            f"Links and focus rings in {accent} on the {scheme} background ({bg}) have a "
            f"contrast of {ratio:.2f}:1; WCAG 2.2 AA needs at least {AA_TEXT}:1 for text."
        )
    text = on_accent(accent)
    ratio = contrast(accent, text)
    if ratio < AA_TEXT:
        problems.append(
            f"Button labels ({text}) on {accent} have a contrast of {ratio:.2f}:1; WCAG 2.2 AA "
            f"needs at least {AA_TEXT}:1."
        )
    if problems:
        suggestion = accent_suggestion(accent, scheme)
        if suggestion:
            problems.append(f"{suggestion} is the nearest shade of this colour that passes.")
    return problems


@dataclasses.dataclass(frozen=True)
class Brand:
    accent: str = "#0b57d0"
    typeface: str = "system"
    scheme: str = "light"
    logo: dict = dataclasses.field(default_factory=dict)
    logo_alt: str = ""
    creator_name: str = ""
    creator_photo: dict = dataclasses.field(default_factory=dict)

    @property
    def css_path(self) -> str:
        """ "" for the default look: store.css has it, and the page makes one request less."""
        if (self.accent, self.typeface, self.scheme) == ("#0b57d0", "system", "light"):
            return ""
        return f"/brand/{self.accent[1:]}-{self.typeface}-{self.scheme}.css"

    @property
    def font_files(self) -> list[str]:
        """Static paths of the WOFF2 files to preload (regular and bold)."""
        stem = FONTS.get(self.typeface, ("", ""))[1]
        if not stem:
            return []
        return [f"storefront/fonts/{stem}-latin-{w}-normal.woff2" for w in (400, 700)]

    @property
    def logo_picture(self) -> Picture | None:
        return Picture.from_record(self.logo, alt=self.logo_alt, display_width=160)

    @property
    def creator_picture(self) -> Picture | None:
        return Picture.from_record(self.creator_photo, alt="", display_width=64)


DEFAULT = Brand()


def paper_accent(accent: str) -> str:
    """The accent as text on white paper (the PDF invoice, an email's body): itself when it
    reads there, else the nearest darker shade that does (a dark store's light accent would
    not), else the page's ink."""
    if HEX.match(accent or "") and contrast(accent, BACKGROUND["light"]) >= AA_TEXT:
        return accent
    return accent_suggestion(accent, "light") if HEX.match(accent or "") else INK["light"]


@dataclasses.dataclass(frozen=True)
class LogoFile:
    """One stored raster rendition of the logo, for places without <picture> (email, PDF)."""

    name: str  # the storage name, e.g. img/<digest>-320.png
    width: int  # the size to show it at, in CSS px (within the box asked for)
    height: int

    @property
    def path(self) -> str:
        return f"/m/{self.name}"  # storefront.views_brand.media_image serves it


def logo_file(brand: Brand, *, max_width: int, max_height: int) -> LogoFile | None:
    """The PNG or JPEG rendition of the brand's logo sharp at twice `max_width` (AVIF and WebP
    are not shown by every mail client or PDF reader), and its size fitted into the box.
    None without a logo or with a record that names nothing image_store could have written."""
    from storefront.media import FOLDER, is_variant_name

    record = brand.logo or {}
    try:
        widths = sorted(int(w) for w in record["widths"])
        width, height = int(record["width"]), int(record["height"])
        name = f"{record['digest']}-{{}}.{record['fallback']}"
    except (KeyError, TypeError, ValueError):
        return None
    if not widths or width <= 0 or height <= 0:
        return None
    chosen = next((w for w in widths if w >= 2 * max_width), widths[-1])
    if not is_variant_name(name.format(chosen)):
        return None
    scale = min(max_width / width, max_height / height, 1)
    return LogoFile(
        name=f"{FOLDER}/{name.format(chosen)}",
        width=max(1, round(width * scale)),
        height=max(1, round(height * scale)),
    )


def brand_from_row(row) -> Brand:
    return Brand(
        accent=row.accent_color,
        typeface=row.typeface,
        scheme=row.scheme,
        logo=row.logo or {},
        logo_alt=row.logo_alt,
        creator_name=row.creator_name,
        creator_photo=row.creator_photo or {},
    )


def _brand_row(stage: str):
    from storefront.models import StoreBrand

    return StoreBrand.objects.filter(stage=stage).first()


def brand_published() -> Brand:
    """The brand buyers see; from the cache (keys per tenant), else one query."""
    if connection.schema_name == "public":
        return DEFAULT
    found = cache.get(CACHE_KEY)
    if isinstance(found, dict):
        return Brand(**found)
    row = _brand_row("published")
    brand = brand_from_row(row) if row else DEFAULT
    cache.set(CACHE_KEY, dataclasses.asdict(brand), CACHE_SECONDS)
    return brand


def brand_draft_get():
    """The draft row the admin edits (made from the published one the first time)."""
    from storefront.models import StoreBrand

    draft = _brand_row("draft")
    if draft is not None:
        return draft
    published = _brand_row("published")
    fields = {}
    if published is not None:
        fields = {
            f.name: getattr(published, f.name)
            for f in StoreBrand._meta.concrete_fields
            if f.name not in ("id", "stage", "updated_at")
        }
    draft, _ = StoreBrand.objects.get_or_create(stage="draft", defaults=fields)
    return draft


def brand_publish(*, actor=None) -> Brand:
    """Copy the draft over the published brand; buyers see it on their next page."""
    from audit.services import audit_diff, audit_record, model_snapshot
    from storefront.models import StoreBrand

    with transaction.atomic():
        draft = brand_draft_get()
        problems = accent_problems(draft.accent_color, draft.scheme)
        if problems:  # a draft saved before a rule changed is still never published
            raise ValueError(" ".join(problems))
        values = {
            f.name: getattr(draft, f.name)
            for f in StoreBrand._meta.concrete_fields
            if f.name not in ("id", "stage", "updated_at")
        }
        published = _brand_row("published")
        before = model_snapshot(published) if published else {}
        published, _ = StoreBrand.objects.update_or_create(stage="published", defaults=values)
        changes = audit_diff(before, model_snapshot(published))
        changes.pop("updated_at", None)
        if actor is not None:
            audit_record(
                request_or_actor=actor,
                action="storefront.brand.publish",
                obj=published,
                changes=changes,
                summary="Published the store's brand",
            )
        # Dropped now and again after the commit: a reader that filled the cache from the old
        # row in between does not keep it.
        cache.delete(CACHE_KEY)
        transaction.on_commit(lambda: cache.delete(CACHE_KEY))
    return brand_from_row(draft)


def brand_css(*, accent: str, typeface: str, scheme: str) -> str:
    """The stylesheet for one brand: custom properties only (store.css uses them)."""
    family, _stem = FONTS[typeface]
    fallback = SERIF_STACK if typeface == "lora" else FALLBACK_STACK
    font = f'"{family}", {fallback}' if family else fallback
    return (
        f":root{{--accent:{accent};--accent-dark:{accent_hover(accent, scheme)};"
        f"--on-accent:{on_accent(accent)};--font:{font};}}\n"
    )
