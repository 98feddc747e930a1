"""Warm a web worker before its first request (WEB_WARM_ON_START; called by config/wsgi.py).

What a process otherwise pays on its first requests, once: importing every view through the
URLconfs, compiling the buyer pages' templates into the cached loader, reading the static
files' manifest and the translation catalogs, connecting the routing listener, and looking up
each store's host (one query per store and process, which after a deploy lands on the first
request of each of the 10,000 stores): the whole routing table is read in one query instead.

It runs in each gunicorn worker (the Procfile does not `--preload`: a forked child starts its
own routing listener and empties what the parent cached, tenants.routing).

Then, from gunicorn's `post_worker_init` (config/gunicorn.py), `warm_threads` has every
request thread open its database connection (Django's are per thread) and read the buyer
page's tables once in the template schema: a new PostgreSQL backend's first queries fill its
caches of types, operators and system catalogs, which every schema shares, so a store's first
request pays only for its own relations. The per-store part is not warmed (10,000 stores per
connection is what costs ~1 GB a backend); TENANT_SCHEMAS_PER_CONNECTION bounds it
(tenants/backend/base.py).
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

logger = logging.getLogger(__name__)

# The hosted pages a buyer can land on first, and what they include.
BUYER_TEMPLATES = (
    "base.html",
    "storefront/index.html",
    "storefront/product.html",
    "storefront/checkout.html",
    "storefront/upsell.html",
    "storefront/thanks.html",
    "storefront/error.html",
    "404.html",
)


def warm() -> dict[str, float | int]:
    """Do the once-per-process work now; returns what was done and how long each part took."""
    from django.contrib.staticfiles.storage import staticfiles_storage
    from django.db import connection
    from django.template.loader import get_template
    from django.urls import get_resolver
    from django.utils import translation

    from tenants.routing import routing_preload

    done: dict[str, float | int] = {}
    started = time.perf_counter()
    for urlconf in {settings.ROOT_URLCONF, getattr(settings, "PUBLIC_SCHEMA_URLCONF", None)}:
        if urlconf:
            get_resolver(urlconf).reverse_dict  # noqa: B018 imports every view, builds the index
    done["urls_ms"] = _ms(started)

    started = time.perf_counter()
    for name in BUYER_TEMPLATES:
        get_template(name)
    done["templates_ms"] = _ms(started)

    started = time.perf_counter()
    try:
        staticfiles_storage.url("storefront/store.css")
    except ValueError:  # not collected (a developer's machine): nothing to read
        pass
    translation.gettext("Buy now")
    done["static_i18n_ms"] = _ms(started)

    started = time.perf_counter()
    try:
        done["hosts"] = routing_preload(getattr(settings, "WEB_WARM_HOSTS", None))
    finally:
        # This thread serves no request (gthread's workers are other threads): give the
        # connection back instead of holding one of the budget's slots.
        connection.close()
    done["hosts_ms"] = _ms(started)
    return done


def warm_on_start() -> None:
    if not getattr(settings, "WEB_WARM_ON_START", False):
        return
    try:
        done = warm()
    except Exception:  # a cold start is slower, never broken
        logger.exception("warm-up failed; serving cold")
        return
    logger.info("warm-up: %s", done)


def warm_connection() -> None:
    """Open this thread's connection and run the buyer page's reads in the template schema."""
    from django.db import connection
    from django_tenants.utils import schema_context

    from storefront.brand_models import StoreBrand
    from storefront.models import StoreSettings
    from storefront.selectors import product_list_active

    with schema_context(settings.TENANT_BASE_SCHEMA):
        StoreSettings.objects.filter(pk=1).first()
        StoreBrand.objects.filter(stage=StoreBrand.Stage.PUBLISHED).first()
        list(product_list_active()[:1])
    connection.set_schema_to_public()


def warm_threads(pool, threads: int) -> int:
    """Run `warm_connection` once on each of the pool's `threads` threads (a barrier keeps any
    thread from taking two); returns how many warmed. Errors are logged, never raised."""
    if not getattr(settings, "WEB_WARM_ON_START", False):
        return 0
    wanted = getattr(settings, "WEB_WARM_THREADS", -1)
    threads = threads if wanted < 0 else min(threads, wanted)
    if threads < 1:
        return 0
    barrier = threading.Barrier(threads)

    def one() -> None:
        try:
            barrier.wait(timeout=10)
        except threading.BrokenBarrierError:
            pass  # fewer threads than asked: warm what we got
        warm_connection()

    warmed = 0
    for future in [pool.submit(one) for _ in range(threads)]:
        try:
            future.result(timeout=30)
            warmed += 1
        except Exception:
            logger.exception("a request thread's warm-up failed; it starts cold")
    return warmed


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
