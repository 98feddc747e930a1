"""Images a creator uploads (product pictures, the store's logo, the creator's face).

`image_check` refuses what must not be decoded (too many bytes, too many pixels, several
frames, not a raster image at all, SVG) from the file's header alone, then decodes it once.
`image_store` writes the resized copies (AVIF, WebP and a JPEG or PNG fallback, a few widths,
named by content hash) under the tenant's storage, like every other upload
(`TenantFileSystemStorage`: MEDIA_ROOT/<schema>/img/…). Nothing is written before the checks
pass; a write that fails half-way removes what it wrote.

The stored record (`ImageVariants`, kept as JSON on the row that shows the image) is all a
page needs to print `<picture>` with `srcset`, `sizes`, `width` and `height` without reading a
file, so the image costs the page no query and no disk access.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_UPLOAD_BYTES = 8 * 1024 * 1024  # 8 MB
MAX_PIXELS = 40_000_000  # 40 megapixels (e.g. 8000 × 5000)
MIN_SIDE = 64  # smaller than this is not worth showing
# Pillow's own guard (a DecompressionBombError past twice this) backs ours up.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ACCEPTED_FORMATS = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP", "AVIF": "AVIF", "GIF": "GIF"}
WIDTHS = (320, 640, 960, 1280)
FOLDER = "img"
_NAME = re.compile(r"^[0-9a-f]{20}-(?:\d{2,4})\.(?:avif|webp|jpg|png)$")


class ImageRefused(ValueError):
    """A readable reason the upload was refused (shown at the form field)."""


@dataclass(frozen=True)
class CheckedImage:
    image: Image.Image  # decoded, upright, RGB or RGBA
    digest: str


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def image_check(upload, *, max_bytes: int = MAX_UPLOAD_BYTES) -> CheckedImage:
    """Refuse or decode one uploaded file. Raises ImageRefused with a reason for the creator."""
    size = getattr(upload, "size", None)
    if size is not None and size > max_bytes:
        raise ImageRefused(
            f"This file is {_megabytes(size)}; images may be at most {_megabytes(max_bytes)}."
        )
    upload.seek(0)
    data = upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageRefused(f"This file is over {_megabytes(max_bytes)}, the most an image may be.")
    if not data:
        raise ImageRefused("This file is empty.")
    head = data[:1024].lstrip().lower()
    if head.startswith((b"<?xml", b"<svg", b"<!doctype svg")) or b"<svg" in head:
        raise ImageRefused(
            "SVG images are not accepted: they can carry scripts. Upload a PNG, JPEG, WebP "
            "or AVIF (export the logo as a PNG)."
        )
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        if isinstance(exc, Image.DecompressionBombError):
            raise ImageRefused(_too_many_pixels_message(None)) from exc
        raise ImageRefused(
            "This file is not an image we can read. Upload a PNG, JPEG, WebP or AVIF."
        ) from exc
    if image.format not in ACCEPTED_FORMATS:
        raise ImageRefused(
            f"{image.format} images are not accepted. Upload a PNG, JPEG, WebP or AVIF."
        )
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageRefused(_too_many_pixels_message((width, height)))
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ImageRefused(
            f"This image is {width} × {height} pixels; each side must be at least {MIN_SIDE}."
        )
    # is_animated looks for a second frame without decoding the first: a bomb of thousands
    # of frames is refused before any pixel is decoded.
    if getattr(image, "is_animated", False):
        raise ImageRefused(
            "This is an animated image. Upload a still image; a moving preview goes in the "
            "product's video link."
        )
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageRefused(
            "This image is damaged or cut short and cannot be read. Export it again."
        ) from exc
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    image = image.convert("RGBA" if has_alpha else "RGB")
    if has_alpha and image.getextrema()[3][0] == 255:  # an alpha channel with nothing clear
        image = image.convert("RGB")
    return CheckedImage(image=image, digest=hashlib.sha256(data).hexdigest()[:20])


def _too_many_pixels_message(size: tuple[int, int] | None) -> str:
    limit = f"{MAX_PIXELS / 1_000_000:g} megapixels"
    if size is None:
        return f"This image has too many pixels; the most is {limit}."
    width, height = size
    return (
        f"This image is {width} × {height} pixels ({width * height / 1_000_000:.1f} "
        f"megapixels); the most is {limit}."
    )


def _encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "avif":
        image.save(out, "AVIF", quality=55, speed=8)
    elif fmt == "webp":
        image.save(out, "WEBP", quality=78, method=4)
    elif fmt == "png":
        image.save(out, "PNG", optimize=True)
    else:
        image.save(out, "JPEG", quality=80, optimize=True, progressive=True)
    return out.getvalue()


def image_store(checked: CheckedImage, *, widths: tuple[int, ...] = WIDTHS) -> dict:
    """Write the resized copies; return the record a page needs (see `Picture`)."""
    image = checked.image
    width, height = image.size
    fallback = "png" if image.mode == "RGBA" else "jpg"
    chosen = sorted({w for w in widths if w < width} | {min(width, max(widths))})
    written: list[str] = []
    try:
        for w in chosen:
            h = max(1, round(height * w / width))
            resized = image if w == width else image.resize((w, h), Image.Resampling.LANCZOS)
            for fmt in ("avif", "webp", fallback):
                name = f"{FOLDER}/{checked.digest}-{w}.{fmt}"
                if not default_storage.exists(name):  # same bytes, same name: already there
                    written.append(default_storage.save(name, ContentFile(_encode(resized, fmt))))
    except Exception:
        for name in written:
            default_storage.delete(name)
        raise
    return {
        "digest": checked.digest,
        "width": width,
        "height": height,
        "widths": chosen,
        "fallback": fallback,
    }


def is_variant_name(name: str) -> bool:
    """Only names image_store writes are served publicly (not deliverables, not anything else)."""
    return bool(_NAME.match(name))


@dataclass(frozen=True)
class Picture:
    """What a template prints for one stored image."""

    alt: str
    width: int
    height: int
    sources: tuple[tuple[str, str], ...]  # (mime type, srcset)
    src: str

    @classmethod
    def from_record(cls, record: dict | None, *, alt: str, display_width: int = 0):
        """`display_width` (px) caps the widths offered: a 96 px logo needs no 1280 w copy."""
        if not record or not record.get("digest"):
            return None
        widths = list(record["widths"])
        if display_width:
            needed = [w for w in widths if w >= display_width * 2] or widths[-1:]
            widths = [w for w in widths if w <= needed[0]]
        base = f"/m/{FOLDER}/{record['digest']}"
        sources = tuple(
            (mime, ", ".join(f"{base}-{w}.{ext} {w}w" for w in widths))
            for mime, ext in (("image/avif", "avif"), ("image/webp", "webp"))
        )
        fallback = record["fallback"]
        src_width = next((w for w in widths if w >= 640), widths[-1])
        return cls(
            alt=alt,
            width=record["width"],
            height=record["height"],
            sources=sources
            + (
                (
                    "image/png" if fallback == "png" else "image/jpeg",
                    ", ".join(f"{base}-{w}.{fallback} {w}w" for w in widths),
                ),
            ),
            src=f"{base}-{src_width}.{fallback}",
        )
