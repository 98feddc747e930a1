"""The demo ladder dressed as a real creator's store: pictures for every product, benefits,
what's included, testimonials, a logo, the creator's face and a published brand.

Two brands (`BRANDS`) make two differently looking stores from the same ladder. The pictures
are drawn here with Pillow (a cover per product: its name on a gradient of the brand's
colours), uploaded through the same checks and resizing as an upload in the admin.
"""

from __future__ import annotations

import functools
import hashlib
import io
from dataclasses import dataclass

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image, ImageDraw, ImageFont

from storefront import branding, media
from storefront.models import Product, ProductImage, StoreBrand, Testimonial
from storefront.services.showcase import product_showcase_refresh
from tests.images import upload


@dataclass(frozen=True)
class BrandSpec:
    key: str
    store_name: str
    accent: str
    scheme: str
    typeface: str
    creator: str
    colors: tuple[tuple[int, int, int], tuple[int, int, int]]  # the covers' gradient


BRANDS = {
    "light": BrandSpec(
        key="light",
        store_name="Lumen Photo School",
        accent="#7a1fa2",
        scheme="light",
        typeface="lora",
        creator="Mara Lind",
        colors=((122, 31, 162), (241, 166, 90)),
    ),
    "dark": BrandSpec(
        key="dark",
        store_name="Nightframe Studio",
        accent="#7fd8c4",
        scheme="dark",
        typeface="atkinson",
        creator="Jonas Okafor",
        colors=((10, 40, 60), (60, 190, 170)),
    ),
}

DETAILS = {
    "photo-basics": (
        "Sharp, well-exposed photos within a week\nConfident with manual mode\n"
        "A portfolio of ten photos you are proud of",
        "12 video lessons (4 h 20 min)\nPractice RAW files\nA printable settings cheat sheet",
        [
            ("I stopped shooting on auto after lesson three.", "Ana, a student from Porto"),
            ("Clear, calm and practical. Worth every cent.", "Tom, a hobby photographer"),
        ],
    ),
}


def _font(size: int):
    return ImageFont.load_default(size=size)


@functools.cache
def cover(title: str, spec: BrandSpec, *, width: int = 1600, height: int = 1000) -> bytes:
    top, bottom = spec.colors
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / height
        draw.line(
            [(0, y), (width, y)],
            fill=tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)),
        )
    for i, r in enumerate((420, 300, 180)):
        draw.ellipse(
            [width - r - 120 - i * 40, 120 + i * 60, width - 120 - i * 40, 120 + r + i * 60],
            outline=(255, 255, 255),
            width=6,
        )
    draw.text((90, height - 260), title, font=_font(96), fill=(255, 255, 255))
    draw.text((94, height - 130), spec.store_name, font=_font(48), fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92)
    return out.getvalue()


@functools.cache
def logo(spec: BrandSpec) -> bytes:
    ink = tuple(int(spec.accent[i : i + 2], 16) for i in (1, 3, 5))
    image = Image.new("RGBA", (820, 144), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse([8, 16, 120, 128], outline=ink + (255,), width=12)
    draw.ellipse([44, 52, 84, 92], fill=ink + (255,))
    draw.text((144, 36), spec.store_name, font=_font(56), fill=ink + (255,))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@functools.cache
def face(spec: BrandSpec) -> bytes:
    top, bottom = spec.colors
    image = Image.new("RGB", (256, 256), bottom)
    draw = ImageDraw.Draw(image)
    draw.ellipse([78, 40, 178, 150], fill=(236, 196, 164))
    draw.ellipse([38, 150, 218, 330], fill=top)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


# What _stored wrote, per picture: the record and the files' bytes. Each test has media of
# its own (the media_root fixture); the same picture for the next test is written from here
# rather than encoded again (AVIF, WebP and JPEG at every width: seconds per store).
_ENCODED: dict[tuple, tuple[dict, dict[str, bytes]]] = {}


def _stored(data: bytes, **kwargs) -> dict:
    key = (hashlib.sha256(data).hexdigest(), tuple(sorted(kwargs.items())))
    if key not in _ENCODED:
        record = media.image_store(media.image_check(upload(data)), **kwargs)
        names = [
            f"{media.FOLDER}/{record['digest']}-{w}.{fmt}"
            for w in record["widths"]
            for fmt in ("avif", "webp", record["fallback"])
        ]
        files = {}
        for name in names:
            with default_storage.open(name, "rb") as stored:
                files[name] = stored.read()
        _ENCODED[key] = (record, files)
        return dict(record)
    record, files = _ENCODED[key]
    for name, content in files.items():
        if not default_storage.exists(name):
            default_storage.save(name, ContentFile(content))
    return dict(record)


def brand_the_store(spec: BrandSpec) -> None:
    """Pictures and words on every product of the ladder, and `spec` published as the brand."""
    for product in Product.objects.all():
        ProductImage.objects.filter(product=product).delete()
        ProductImage.objects.create(
            product=product,
            alt=f"Cover of {product.name}",
            variants=_stored(cover(product.name, spec)),
        )
        benefits, included, quotes = DETAILS.get(product.slug, ("", "", []))
        if benefits:
            ProductImage.objects.create(
                product=product,
                position=1,
                alt=f"A lesson of {product.name} on a laptop",
                variants=_stored(cover("Lesson 3: light", spec, width=1200, height=800)),
            )
            Product.objects.filter(pk=product.pk).update(benefits=benefits, included=included)
            Testimonial.objects.filter(product=product).delete()
            for position, (quote, author) in enumerate(quotes):
                Testimonial.objects.create(
                    product=product, position=position, quote=quote, author=author
                )
        product_showcase_refresh(product_id=product.pk)
    problems = branding.accent_problems(spec.accent, spec.scheme)
    assert problems == [], problems
    StoreBrand.objects.filter(stage="draft").delete()
    StoreBrand.objects.create(
        stage="draft",
        accent_color=spec.accent,
        scheme=spec.scheme,
        typeface=spec.typeface,
        logo=_stored(logo(spec), widths=(160, 320, 640)),
        logo_alt=spec.store_name,
        creator_name=spec.creator,
        creator_photo=_stored(face(spec), widths=(128, 256)),
    )
    branding.brand_publish()
