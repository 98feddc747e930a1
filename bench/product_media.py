"""The product page's throughput with pictures and a brand, against today's page, in one run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/storefront_bench_media \
      .venv/bin/python -m bench.product_media [--workers 2] [--threads 8] [--seconds 10]

Same server set-up as bench/checkout_load.py (gunicorn, production settings, the real
PostgreSQL and Redis). Two stores on the one server: `load.localhost` exactly as the product
page was before this feature (no brand, a product without pictures: "today"), and
`pictures.localhost` with its brand published (logo, accent, typeface, the creator's face) and
the same product with three pictures, benefits, what's included and two testimonials. The two
pages are driven in alternating phases (`--rounds` of each, `--threads` threads for
`--seconds`; returning visitors: the attribution cookie is kept, as a browser's would be), so
both see the same machine. Only the HTML is measured: the pictures are separate, immutable,
cacheable files. Prints req/s and p50/p99 per phase and the ratio of the medians, and
writes .local/bench-product-media.json.
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

from tenants.services import creator_create
core = None
with tenant_context(Creator.objects.get(slug="load")):
    core = Product.objects.get(slug="course")
creator = creator_create(slug="pictures", display_name="Pictures Store",
                         domain="pictures.localhost", owner_email="owner@pictures.example",
                         password="bench-pass-123").creator
with tenant_context(creator):
    shown = Product.objects.create(
        slug="course", name=core.name, price_amount=core.price_amount, currency="USD",
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


def phase(port: int, host: str, path: str, *, threads: int, seconds: float, label: str) -> dict:
    rec = Recorder()
    clients: dict[int, Client] = {}

    def get(i: int) -> None:
        client = clients.setdefault(i % threads, Client(port, rec, address(i % threads), host=host))
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
    parser.add_argument("--rounds", type=int, default=3)
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
        run.manage("shell", "-c", MEDIA_SEED)
        today_host, media_host = "load.localhost", "pictures.localhost"
        phase(port, today_host, "/p/course/", threads=args.threads, seconds=3, label="warm-up")
        phase(port, media_host, "/p/course/", threads=args.threads, seconds=3, label="warm-up")
        today, pictures = [], []
        for _ in range(args.rounds):
            today.append(phase(port, today_host, "/p/course/", label="today", **kw))
            pictures.append(phase(port, media_host, "/p/course/", label="with pictures", **kw))
        base = statistics.median(t["rps"] for t in today)
        with_pictures = statistics.median(p["rps"] for p in pictures)
        results.update(
            today=today,
            pictures=pictures,
            ratio=with_pictures / base,
            load_average=os.getloadavg(),
        )
        say(
            f"with pictures {with_pictures:.0f} req/s / today {base:.0f} req/s (medians of "
            f"{args.rounds} alternating phases) = {results['ratio']:.3f}"
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
