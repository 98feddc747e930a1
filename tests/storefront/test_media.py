"""Product pictures: uploaded in the admin with alt text, refused when they are too big, too
many pixels, animated, damaged, SVG or not an image (nothing stored), stored as AVIF, WebP
and a fallback in a few widths under the store's own folder, and shown with srcset, sizes,
width and height."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from PIL import Image, ImageFile

from core.money_forms import major_text
from storefront import media
from storefront.models import Product, ProductImage
from storefront.services.showcase import product_showcase_refresh
from tests import images
from tests.factories import ProductFactory


@pytest.fixture
def owner(tenant):
    client = Client(HTTP_HOST="t1.localhost")
    client.force_login(get_user_model().objects.get(email="owner@t1.example"))
    return client


def _stored(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _product_form(product: Product, *, upload=None, alt: str = "", **extra) -> dict:
    data = {
        "slug": product.slug,
        "name": product.name,
        "description": product.description,
        "tier": product.tier,
        "ladder_position": product.ladder_position,
        "price_amount": major_text(product.price_amount, product.currency),
        "currency": product.currency,
        "refund_terms": product.refund_terms,
        "status": product.status,
        "benefits": "Sharper photos in a week\nConfidence with manual mode",
        "included": "12 video lessons\nPractice files",
        "video_url": "",
        "images-TOTAL_FORMS": "1",
        "images-INITIAL_FORMS": "0",
        "images-MIN_NUM_FORMS": "0",
        "images-MAX_NUM_FORMS": "1000",
        "images-0-alt": alt,
        "images-0-position": "0",
        "testimonials-TOTAL_FORMS": "1",
        "testimonials-INITIAL_FORMS": "0",
        "testimonials-MIN_NUM_FORMS": "0",
        "testimonials-MAX_NUM_FORMS": "1000",
        "testimonials-0-quote": "I finally understand light.",
        "testimonials-0-author": "Ana, a student",
        "testimonials-0-position": "0",
        "_save": "Save",
    }
    if upload is not None:
        data["images-0-upload"] = upload
    data.update(extra)
    return data


def _post(owner, product, **kwargs):
    return owner.post(
        f"/admin/storefront/product/{product.pk}/change/", _product_form(product, **kwargs)
    )


def test_a_picture_uploaded_in_the_admin_is_stored_resized_in_three_formats_and_shown_with_srcset(
    owner, media_root
):
    product = ProductFactory(slug="course", status=Product.Status.ACTIVE)
    response = _post(
        owner,
        product,
        upload=images.upload(images.photo_bytes(1600, 1000)),
        alt="The course's first lesson on a laptop",
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    image = ProductImage.objects.get(product=product)
    record = image.variants
    assert (record["width"], record["height"]) == (1600, 1000)
    assert record["widths"] == [320, 640, 960, 1280] and record["fallback"] == "jpg"
    files = _stored(media_root)
    # Under the store's own folder (its schema), like every other upload.
    assert len(files) == 4 * 3 and all(f.startswith("t1/img/") for f in files), files
    for ext, fmt in (("avif", "AVIF"), ("webp", "WEBP"), ("jpg", "JPEG")):
        with Image.open(media_root / "t1" / "img" / f"{record['digest']}-640.{ext}") as im:
            assert (im.format, im.size) == (fmt, (640, 400))

    page = Client(HTTP_HOST="t1.localhost").get("/p/course/").content.decode()
    picture = re.search(r"<picture>.*?</picture>", page, re.S).group(0)
    assert '<source type="image/avif" srcset="' in picture
    assert '<source type="image/webp" srcset="' in picture
    assert f"/m/img/{record['digest']}-1280.avif 1280w" in picture
    assert 'sizes="' in picture
    assert 'width="1600" height="1000"' in picture
    assert 'alt="The course&#x27;s first lesson on a laptop"' in picture
    assert 'fetchpriority="high"' in picture  # the hero is above the fold: not lazy
    assert "Sharper photos in a week" in page and "12 video lessons" in page
    assert "I finally understand light." in page and "Ana, a student" in page

    served = Client(HTTP_HOST="t1.localhost").get(f"/m/img/{record['digest']}-640.avif")
    assert served.status_code == 200 and served["Content-Type"] == "image/avif"
    assert "immutable" in served["Cache-Control"]
    assert b"".join(served.streaming_content)[4:12] == b"ftypavif"


def test_pictures_below_the_first_are_lazy(owner, media_root):
    product = ProductFactory(slug="course", status=Product.Status.ACTIVE)
    for position, color in enumerate([(200, 0, 0), (0, 120, 0)]):
        checked = media.image_check(images.upload(images.photo_bytes(900, 600, color=color)))
        ProductImage.objects.create(
            product=product,
            position=position,
            alt=f"picture {position}",
            variants=media.image_store(checked),
        )
    product_showcase_refresh(product_id=product.pk)
    page = Client(HTTP_HOST="t1.localhost").get("/p/course/").content.decode()
    imgs = re.findall(r"<img [^>]*>", page)
    assert len(imgs) == 2
    assert 'fetchpriority="high"' in imgs[0] and "loading" not in imgs[0]
    assert 'loading="lazy"' in imgs[1] and 'width="900" height="600"' in imgs[1]


BAD_UPLOADS = {
    "oversized": (
        lambda: images.upload(b"\xff\xd8\xff" + b"0" * (media.MAX_UPLOAD_BYTES + 10)),
        "images may be at most 8.0 MB",
    ),
    "too many pixels": (
        lambda: images.upload(images.png_claiming(8000, 6000), "big.png", "image/png"),
        "8000 × 6000 pixels (48.0 megapixels); the most is 40 megapixels",
    ),
    "decompression bomb": (  # past twice the limit Pillow itself refuses to open it
        lambda: images.upload(images.png_claiming(50000, 50000), "bomb.png", "image/png"),
        "too many pixels; the most is 40 megapixels",
    ),
    "animated bomb": (
        lambda: images.upload(images.animated_gif(), "bomb.gif", "image/gif"),
        "This is an animated image",
    ),
    "corrupt": (
        lambda: images.upload(images.truncated_jpeg()),
        "damaged or cut short",
    ),
    "not an image": (
        lambda: images.upload(b"%PDF-1.7\n" + b"x" * 500, "invoice.pdf", "application/pdf"),
        "not an image we can read",
    ),
    "svg": (
        lambda: images.upload(images.SVG, "logo.svg", "image/svg+xml"),
        "SVG images are not accepted: they can carry scripts",
    ),
    "svg named png": (
        lambda: images.upload(images.SVG, "logo.png", "image/png"),
        "SVG images are not accepted",
    ),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_a_bad_upload_is_refused_at_its_field_with_the_reason_and_nothing_is_stored(
    owner, media_root, case
):
    product = ProductFactory(slug="course")
    make, reason = BAD_UPLOADS[case]
    response = _post(owner, product, upload=make(), alt="A picture")
    assert response.status_code == 200  # the form again, not a 500 and not a redirect
    page = response.content.decode()
    assert reason in page.replace("&#x27;", "'"), page[page.find("errorlist") :][:800]
    assert ProductImage.objects.count() == 0
    assert _stored(media_root) == []
    product.refresh_from_db()
    assert product.benefits == ""  # the whole form was refused: nothing half-saved


def test_a_picture_without_alt_text_is_refused(owner, media_root):
    product = ProductFactory(slug="course")
    response = _post(owner, product, upload=images.upload(images.photo_bytes(800, 500)))
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert ProductImage.objects.count() == 0 and _stored(media_root) == []


def test_pixel_and_frame_limits_hold_before_any_pixel_is_decoded(monkeypatch):
    files = (images.png_claiming(9000, 9000), images.animated_gif(50))
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self) or None)
    for data in files:
        with pytest.raises(media.ImageRefused):
            media.image_check(images.upload(data))
    assert decoded == []


def test_a_transparent_logo_keeps_its_transparency_in_a_png_fallback(media_root, tenant):
    logo = Image.new("RGBA", (400, 200), (0, 0, 0, 0))
    logo.paste((200, 30, 30, 255), (50, 50, 350, 150))
    import io

    out = io.BytesIO()
    logo.save(out, "PNG")
    record = media.image_store(media.image_check(images.upload(out.getvalue(), "l.png")))
    assert record["fallback"] == "png" and record["widths"] == [320, 400]
    stored = _stored(media_root)
    assert f"t1/img/{record['digest']}-320.webp" in stored, stored
    with Image.open(media_root / "t1" / "img" / f"{record['digest']}-320.webp") as im:
        assert im.mode == "RGBA"


def test_a_stores_pictures_are_not_served_on_another_stores_domain(owner, media_root):
    product = ProductFactory(slug="course", status=Product.Status.ACTIVE)
    record = media.image_store(media.image_check(images.upload(images.photo_bytes(700, 500))))
    ProductImage.objects.create(product=product, alt="x", variants=record)
    name = f"/m/img/{record['digest']}-640.webp"
    assert Client(HTTP_HOST="t1.localhost").get(name).status_code == 200
    connection.set_schema_to_public()
    assert Client(HTTP_HOST="t2.localhost").get(name).status_code == 404


@pytest.mark.parametrize(
    "name", ["../../t2/img/x.jpg", "deliverables%2Fcourse.zip", "abc.jpg", "0" * 20 + "-640.svg"]
)
def test_only_resized_picture_names_are_served(tenant, media_root, name):
    assert Client(HTTP_HOST="t1.localhost").get(f"/m/img/{name}").status_code == 404


def test_a_picture_deleted_in_the_admin_leaves_the_page(owner, media_root):
    product = ProductFactory(slug="course", status=Product.Status.ACTIVE)
    _post(owner, product, upload=images.upload(images.photo_bytes(900, 600)), alt="Cover")
    image = ProductImage.objects.get(product=product)
    assert "<picture>" in Client(HTTP_HOST="t1.localhost").get("/p/course/").content.decode()
    form = _product_form(
        product,
        **{
            "images-INITIAL_FORMS": "1",
            "images-0-id": str(image.pk),
            "images-0-product": str(product.pk),
            "images-0-alt": "Cover",
            "images-0-DELETE": "on",
            "testimonials-TOTAL_FORMS": "0",
        },
    )
    response = owner.post(f"/admin/storefront/product/{product.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert not ProductImage.objects.exists()
    product.refresh_from_db()
    assert product.showcase["images"] == []
    assert [t["author"] for t in product.showcase["testimonials"]] == ["Ana, a student"]
    assert "<picture>" not in Client(HTTP_HOST="t1.localhost").get("/p/course/").content.decode()


def test_the_follow_up_offer_page_shows_the_offers_picture_like_the_upsell_page(tenant, media_root):
    """The email's landing page: the offered product's picture, with the same include as the
    checkout and upsell pages (srcset per format, sizes, width and height: no layout shift)."""
    from storefront.models import FollowUpSend
    from storefront.services import followups
    from tests.followups.helpers import catalog, paid_order

    core, _, cross = catalog()
    order = paid_order("buyer@example.com", core)
    checked = media.image_check(images.upload(images.photo_bytes(1200, 800)))
    ProductImage.objects.create(
        product=cross.product, alt="The presets on a laptop", variants=media.image_store(checked)
    )
    product_showcase_refresh(product_id=cross.product.pk)
    send = FollowUpSend.objects.filter(order=order, offer=cross).order_by("step").first()
    page = (
        Client(HTTP_HOST="t1.localhost")
        .get("/f/" + followups.accept_token(send=send, schema="t1"))
        .content.decode()
    )
    assert 'data-stage="offer"' in page
    picture = re.search(r'<div class="offer-intro"><picture>.*?</picture>', page, re.S).group(0)
    digest = ProductImage.objects.get(product=cross.product).variants["digest"]
    # A 96 px thumbnail: only the smallest copy sharp at twice its width is offered.
    assert f'<source type="image/avif" srcset="/m/img/{digest}-320.avif 320w"' in picture
    assert '<source type="image/webp" srcset="' in picture and 'sizes="96px"' in picture
    assert 'alt="The presets on a laptop" width="1200" height="800" class="thumb"' in picture
    assert 'fetchpriority="high"' in picture  # above the fold, like the upsell's
