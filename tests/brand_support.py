"""A published brand with a stored logo, for the tests of what wears the brand (PDF, email)."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

from storefront import branding, media
from storefront.models import StoreBrand
from tests import images

LOGO_SIZE = (820, 144)  # a wide logo, like most


def logo_png() -> bytes:
    """A wide logo with a transparent background (so stored with PNG as its fallback)."""
    image = Image.new("RGBA", LOGO_SIZE, (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse([8, 16, 120, 128], outline=(122, 31, 162, 255), width=12)
    draw.rectangle([160, 40, 800, 104], fill=(122, 31, 162, 255))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def publish_brand(
    *, accent: str = "#7a1fa2", scheme: str = "light", logo: bool = True, creator: str = ""
) -> StoreBrand:
    """Publish a brand as the admin would (the draft, then Publish); the logo goes through the
    upload's checks and resizing into the test's media root."""
    record = {}
    if logo:
        data = logo_png()
        record = media.image_store(
            media.image_check(images.upload(data, "logo.png", "image/png")),
            widths=(160, 320, 640),
        )
    StoreBrand.objects.filter(stage="draft").delete()
    StoreBrand.objects.create(
        stage="draft",
        accent_color=accent,
        scheme=scheme,
        logo=record,
        logo_alt="Lumen Photo School" if logo else "",
        creator_name=creator,
    )
    branding.brand_publish()
    return StoreBrand.objects.get(stage="published")
