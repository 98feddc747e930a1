"""Warm a web worker before its first request (WEB_WARM_ON_START; called by config/wsgi.py).

What a process otherwise pays on its first requests, once: importing every view through the
URLconfs, compiling the buyer pages' templates into the cached loader, reading the static
files' manifest and the translation catalogs, connecting the routing listener, and looking up
each store's host (one query per store and process, which after a deploy lands on the first
request of each of the 10,000 stores): the whole routing table is read in one query instead.

It runs in each gunicorn worker (the Procfile does not `--preload`: a forked child starts its
own routing listener and empties what the parent cached, tenants.routing). PostgreSQL's
per-schema catalog caches are not warmed here: they belong to a connection, not to the process,
and are what TENANT_SCHEMAS_PER_CONNECTION bounds (tenants/backend/base.py).
"""

from __future__ import annotations

import logging
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


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
