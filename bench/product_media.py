"""The product page's throughput with pictures and a brand, against today's page, in one run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/storefront_bench_media \
      .venv/bin/python -m bench.product_media [--workers 2] [--threads 8] [--seconds 10]

Same server set-up as bench/checkout_load.py (gunicorn, production settings, the real
PostgreSQL and Redis). Phases on the same server, one after the other, `--rounds` times:

1. "today": the store as it was before this feature (no brand, the product without pictures);
2. "with pictures": the store's brand published (logo, accent, typeface, the creator's face)
   and a product with three pictures, benefits, what's included and two testimonials;
3. "today" again is the same product as 1 on the branded store.

Each phase drives the page from `--threads` threads for `--seconds` (returning visitors: the
attribution cookie is kept, as a browser would). Only the HTML is measured: the pictures are
separate, immutable, cacheable files. Prints req/s, p50/p99 and the ratio with pictures /
today, and writes .local/bench-product-media.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics

from bench.harness import ROOT, Client, Recorder, Run, address, db_name_from_env, drive, say

MEDIA_SEED = r"""
import io, json
from django_tenants.utils import tenant_context
from PIL import Image, ImageDraw
from django.core.files.uploadedfile import SimpleUploadedFile
from storefront import branding, media
from storefront.models import Product, ProductImage, StoreBrand, Testimonial
from storefront.services.showcase import product_showcase_refresh
from tenants.models import Creator

def picture(w, h, color):
    im = Image.linear_gradient("L").resize((w, h)).convert("RGB")
    im = Image.blend(im, Image.new("RGB", (w, h), color), 0.5)
    out = io.BytesIO(); im.save(out, "JPEG", quality=90)
    return media.image_store(media.image_check(SimpleUploadedFile("p.jpg", out.getvalue())))

with tenant_context(Creator.objects.get(slug="load")):
    core = Product.objects.get(slug="course")
    shown = Product.objects.create(
        slug="course-pictures", name=core.name, price_amount=core.price_amount, currency="USD",
        status=Product.Status.ACTIVE, ladder_position=9, description=core.description,
        deliverable_url=core.deliverable_url,
        benefits="Sharp photos in a week\nConfident with manual mode\nA portfolio",
        included="12 video lessons\nPractice RAW files\nA settings cheat sheet")
    for i, color in enumerate([(122, 31, 162), (20, 120, 90), (200, 120, 40)]):
        ProductImage.objects.create(product=shown, position=i, alt=f"Picture {i}",
                                    variants=picture(1600, 1000, color))
    Testimonial.objects.create(product=shown, quote="I stopped shooting on auto.", author="Ana")
    Testimonial.objects.create(product=shown, quote="Clear.", author="Tom", position=1)
    product_showcase_refresh(product_id=shown.pk)
    StoreBrand.objects.create(stage="draft", accent_color="#7a1fa2", typeface="lora",
        scheme="light", logo=picture(640, 160, (122, 31, 162)), logo_alt="Load Store",
        creator_name="Mara Lind", creator_photo=picture(256, 256, (200, 150, 120)))
    branding.brand_publish()
print(json.dumps({"pictures": shown.slug}))
"""


def phase(port: int, path: str, *, threads: int, seconds: float, label: str) -> dict:
    rec = Recorder()
    clients: dict[int, Client] = {}

    def get(i: int) -> None:
        client = clients.setdefault(i % threads, Client(port, rec, address(i % threads)))
        client.request(label, "GET", path)

    elapsed, _ = drive(get, threads=threads, seconds=seconds, max_iterations=10_000_000)
    summary = rec.summary(elapsed)[label]
    bad = sum(n for s, n in summary["statuses"].items() if s >= 400)
    if bad:
        raise RuntimeError(f"{label}: {bad} error responses: {rec.errors[:3]}")
    p50, p99 = summary["p50_ms"], summary["p99_ms"]
    say(f"{label}: {summary['rps']:.0f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    return summary


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    server, db = db_name_from_env("storefront_bench_media")
    run = Run(
        server=server, db=db, redis_url=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/11")
    )
    results: dict = {"workers": args.workers, "threads": args.threads, "rounds": []}
    try:
        run.create_database()
        port = run.start_gunicorn(args.workers)
        kw = {"threads": args.threads, "seconds": args.seconds}
        phase(port, "/p/course/", threads=args.threads, seconds=3, label="warm-up")
        today = [phase(port, "/p/course/", label="today (no brand, no pictures)", **kw)]
        run.manage("shell", "-c", MEDIA_SEED)
        phase(port, "/p/course-pictures/", threads=args.threads, seconds=3, label="warm-up")
        pictures = []
        for _ in range(args.rounds):
            pictures.append(phase(port, "/p/course-pictures/", label="with pictures", **kw))
            today.append(phase(port, "/p/course/", label="today's page, branded store", **kw))
        base = today[0]["rps"]
        with_pictures = statistics.median(p["rps"] for p in pictures)
        results.update(
            today=today,
            pictures=pictures,
            ratio=with_pictures / base,
            ratio_to_branded_plain=with_pictures / statistics.median(t["rps"] for t in today[1:]),
        )
        say(
            f"with pictures {with_pictures:.0f} req/s (median of {args.rounds}) / today "
            f"{base:.0f} req/s = {results['ratio']:.3f}; against the same page on the branded "
            f"store: {results['ratio_to_branded_plain']:.3f}"
        )
    finally:
        out = ROOT / ".local" / "bench-product-media.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(results, indent=2, default=str))
        say(f"results in {out}")
        run.close(drop=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
