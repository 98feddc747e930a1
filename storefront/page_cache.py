"""Hosted pages rendered once per change, not once per request: an in-process cache of page
bodies per store, dropped whenever anything a cached page shows changes.

What a page shows lives in the tables of `WATCHED_TABLES`, the store's row (tenants_creator)
and nothing else. Triggers on those tables (migration 0011) `NOTIFY storefront_pages` with the
store's schema on every INSERT, UPDATE, DELETE and TRUNCATE, ORM or not (`.update()`, raw SQL,
another process); the creator's row already notifies `tenants_routing` (tenants migration
0002). Each process has one daemon thread listening on both channels: a notification drops that
store's entries (a creator change drops all). As with the routing cache (tenants.routing, whose
listener this reuses), a process only caches while its listener is connected, entries are
stored only if no change arrived while they were rendered, and changes made through the ORM in
this process drop the store's entries synchronously (and again on commit), so the process that
changed a price never serves the old one. A page drawn inside a transaction is never stored
(it may show that transaction's own writes, which may yet roll back).

Keys are (schema, page, slug): one store never reads another's entry. Only pages that are the
same for every buyer are kept: the product page, and the checkout page without a prefill, a
coupon or an experiment arm of the visitor's own (storefront.views decides); what differs per
request (the CSRF token) is filled into the kept body through a placeholder, and what a view
does per visitor (the attribution cookie, the page view) it still does on every request.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models.signals import post_delete, post_save
from django.http import HttpResponse
from django.middleware.csrf import get_token
from django.middleware.gzip import GZipMiddleware
from django.utils.cache import patch_vary_headers
from django.utils.regex_helper import _lazy_re_compile
from django.utils.text import compress_string

from tenants.routing import CHANNEL as ROUTING_CHANNEL
from tenants.routing import RoutingCache

CHANNEL = "storefront_pages"
# Every table whose rows a cached page shows (the notify triggers of migration 0011).
WATCHED_TABLES = (
    "storefront_product",
    "storefront_productimage",
    "storefront_testimonial",
    "storefront_storesettings",
    "storefront_taxrate",
    "storefront_storebrand",
    "offers_offer",
    "analytics_experiment",
    "payments_payoutaccount",
    "subscriptions_plan",
)
# A notification drops the store's entries at once and again this much later: the writer's own
# after-commit steps (the brand's cache key, tenants.routing's entry) may lag its commit by a
# moment, and a page drawn in that moment would otherwise keep what they held.
AGAIN_SECONDS = 1.0
MAX_ENTRIES = getattr(settings, "STOREFRONT_PAGE_CACHE_SIZE", 2000)
# In the context as `csrf_token` when a page is drawn (so {% csrf_token %} writes it), replaced
# by the request's own masked token in every response, the first one included.
CSRF_PLACEHOLDER = "__page_csrf_token__"
_PLACEHOLDER = CSRF_PLACEHOLDER.encode()
# The request's CSP nonce (core.security), should a kept page ever carry one (an inline
# `<script nonce="{{ csp_nonce }}">`): kept as this, and each response gets its own request's
# nonce, the one its Content-Security-Policy header names.
_NONCE = b"__page_csp_nonce__"
_ALL = "\x00all\x00"
_ACCEPTS_GZIP = _lazy_re_compile(r"\bgzip\b")  # as GZipMiddleware reads Accept-Encoding


@dataclass(frozen=True)
class CachedPage:
    body: bytes
    content_type: str
    product_id: int | None = None
    # Compressed once per change (GZipMiddleware would compress it on every request); only a
    # page with nothing per request in it (a CSRF token must not sit in a reused gzip stream).
    gzipped: bytes | None = None

    def response(self, request) -> HttpResponse:
        body = self.body
        if _NONCE in body:
            body = body.replace(_NONCE, getattr(request, "csp_nonce", "").encode())
        if _PLACEHOLDER in body:
            body = body.replace(_PLACEHOLDER, get_token(request).encode())
        elif self.gzipped is not None and _ACCEPTS_GZIP.search(
            request.META.get("HTTP_ACCEPT_ENCODING", "")
        ):
            response = HttpResponse(self.gzipped, content_type=self.content_type)
            patch_vary_headers(response, ("Accept-Encoding",))
            response["Content-Encoding"] = "gzip"  # GZipMiddleware leaves it as it is
            return response
        return HttpResponse(body, content_type=self.content_type)


def _gzipped(body: bytes) -> bytes | None:
    if _PLACEHOLDER in body or _NONCE in body or len(body) < 200:
        return None
    packed = compress_string(body, max_random_bytes=GZipMiddleware.max_random_bytes)
    return packed if len(packed) < len(body) else None


class PageCache(RoutingCache):
    """The routing cache's listener (start per process, reconnect, cache only while
    connected), with page bodies as entries and two channels to listen on."""

    listener_name = "storefront-pages-listener"

    def __init__(self) -> None:
        super().__init__()
        self._entries: OrderedDict[tuple, CachedPage] = OrderedDict()  # type: ignore[assignment]
        self._again: dict[str, float] = {}  # schema -> when to drop its pages once more
        self.enabled = getattr(settings, "STOREFRONT_PAGE_CACHE", True)

    def invalidate(self, schema: str = _ALL) -> None:
        with self._lock:
            self.generation += 1
            if schema == _ALL:
                self._entries.clear()
            else:
                for key in [k for k in self._entries if k[0] == schema]:
                    del self._entries[key]

    def get(self, key: tuple) -> CachedPage | None:
        if not self.enabled:
            return None
        if self._pid != os.getpid():
            self._start_listener()
        return self._entries.get(key) if self.listening else None

    def put(self, key: tuple, page: CachedPage, generation: int) -> None:
        # Not inside a transaction: what it read may be its own uncommitted (or rolled back)
        # writes. Hosted pages run outside one (no ATOMIC_REQUESTS).
        if not (self.enabled and self.listening) or connection.in_atomic_block:
            return
        with self._lock:
            if generation != self.generation:
                return  # something changed while the page was drawn: the next request draws it
            self._entries[key] = page
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)

    channels = (CHANNEL, ROUTING_CHANNEL)
    wait_seconds = 0.2

    def _on_notify(self, note) -> None:
        """A store's pages on its schema's notification, every page on a routing change; the
        same again AGAIN_SECONDS later (`_on_idle`)."""
        schema = note.payload if note.channel == CHANNEL else _ALL
        self.invalidate(schema)
        self._again[schema] = time.monotonic() + AGAIN_SECONDS

    def _on_idle(self) -> None:
        for schema, due in list(self._again.items()):
            if due <= time.monotonic():
                del self._again[schema]
                self.invalidate(schema)


page_cache = PageCache()


def generation() -> int:
    """Read before drawing a page; hand to `page_store` after."""
    return page_cache.generation


def page_get(*parts) -> CachedPage | None:
    return page_cache.get((connection.schema_name, *parts))


def page_store(*parts, page: CachedPage, since: int) -> None:
    page_cache.put((connection.schema_name, *parts), page, since)


def page_from_response(request, response, *, product_id: int | None = None) -> CachedPage:
    """The page as drawn (with the CSRF placeholder, if it has a form, and the request's CSP
    nonce made a placeholder) to store, and to answer this request with
    (`CachedPage.response`)."""
    body = response.content
    nonce = getattr(request, "csp_nonce", "")
    if nonce:
        body = body.replace(nonce.encode(), _NONCE)
    return CachedPage(body, response["Content-Type"], product_id, _gzipped(body))


# --- invalidation from this process ---------------------------------------------------------
def _pages_changed(sender, using=None, **kwargs) -> None:
    conn = connections[using or "default"]
    schema = getattr(conn, "schema_name", _ALL)
    page_cache.invalidate(schema)
    if conn.in_atomic_block:  # and again once committed: others may have drawn it meanwhile
        transaction.on_commit(lambda: page_cache.invalidate(schema), using=using)


def _store_changed(sender, instance, **kwargs) -> None:
    page_cache.invalidate(getattr(instance, "schema_name", _ALL) or _ALL)


def watch_models() -> None:
    """Connect the models behind WATCHED_TABLES and the store's row (AppConfig.ready)."""
    from django.apps import apps

    from tenants.models import Creator

    post_save.connect(_store_changed, sender=Creator, dispatch_uid="pages-creator-save")
    post_delete.connect(_store_changed, sender=Creator, dispatch_uid="pages-creator-delete")

    for model in apps.get_models():
        if model._meta.db_table in WATCHED_TABLES:
            uid = f"pages-{model._meta.label}"
            post_save.connect(_pages_changed, sender=model, dispatch_uid=f"{uid}-save")
            post_delete.connect(_pages_changed, sender=model, dispatch_uid=f"{uid}-delete")
