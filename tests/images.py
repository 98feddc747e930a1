"""Image files for the media tests: real encoders (Pillow), plus hand-made bad files."""

from __future__ import annotations

import io
import struct
import zlib

from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image


def photo_bytes(width: int = 1600, height: int = 1000, fmt: str = "JPEG", color=None) -> bytes:
    """A picture with some detail (a gradient), so the encoders have work to do."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    if color is not None:
        image = Image.blend(image, Image.new("RGB", (width, height), color), 0.5)
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def upload(data: bytes, name: str = "photo.jpg", content_type: str = "image/jpeg"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims width × height pixels (a decompression bomb's shape):
    only a decoder that trusts the header would allocate for it."""
    real = io.BytesIO()
    Image.new("L", (64, 64)).save(real, "PNG")
    data = bytearray(real.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def animated_gif(frames: int = 200) -> bytes:
    """Many frames in a few kilobytes: decoding them all is the bomb."""
    images = [Image.new("RGB", (400, 400), (i % 256, (7 * i) % 256, 90)) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=20, loop=0)
    return out.getvalue()


def truncated_jpeg() -> bytes:
    data = photo_bytes(800, 600)
    return data[: len(data) // 3]


SVG = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
    b'<script>alert(document.cookie)</script><rect width="100" height="100"/></svg>'
)
