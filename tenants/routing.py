"""Host → creator routing with an in-process cache that every process drops on any change.

The request path does a dictionary lookup: no query, and (with the lazy backend in
`tenants.backend`) no `SET search_path` unless the connection was in another schema.

Invalidation: triggers on `tenants_creator` and `tenants_domain` (migration 0002) `NOTIFY` on
every UPDATE, DELETE and TRUNCATE. Each process has one daemon thread holding a `LISTEN`
connection; a notification empties the cache. A process only caches while that listener is
connected, so a lost notification cannot leave a stale entry: when the listener drops, the cache
is emptied and every request looks the host up until it is back. Lookups carry the generation
they started in and are not stored if a change arrived meanwhile. Changes made through the ORM in
this process also empty the cache synchronously (on save/delete, on commit and on rollback), so
the process that made a change never serves the old mapping, not even for the milliseconds the
notification takes to come back. INSERTs do not notify: a new domain or creator cannot make an
existing entry wrong, and misses are never cached. `tenants_customdomain` notifies too
(migration 0006): a cached creator carries where its subdomain redirects (`canonical_host`).
"""

from __future__ import annotations

import copy
import logging
import os
import threading

import psycopg
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.db import connection, connections, transaction
from django.db.models.signals import post_delete, post_save
from django.http import Http404, HttpResponseNotFound, HttpResponsePermanentRedirect
from django.urls import set_urlconf
from django_tenants.utils import get_public_schema_name, quote_schema_name, remove_www

from core.identity import domain_key
from tenants.models import Creator, CustomDomain, Domain

logger = logging.getLogger(__name__)

CHANNEL = "tenants_routing"
MAX_ENTRIES = getattr(settings, "TENANT_ROUTING_CACHE_SIZE", 100_000)


class RoutingCache:
    def __init__(self) -> None:
        self._entries: dict[str, Creator] = {}
        self._lock = threading.Lock()
        self.generation = 0
        self.listening = False
        self._pid: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._listen_conn: psycopg.Connection | None = None
        self.enabled = getattr(settings, "TENANT_ROUTING_CACHE", True)

    # --- the cache ------------------------------------------------------------------------
    def invalidate(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()

    def resolve(self, hostname: str) -> Creator | None:
        """The creator serving `hostname`, or None. Never a mapping older than the last change."""
        if self.enabled and self._pid != os.getpid():
            self._start_listener()
        if self.listening:
            hit = self._entries.get(hostname)
            if hit is not None:
                return hit
        generation = self.generation
        creator = creator_for_host(hostname)
        if creator is not None and self.listening:
            with self._lock:
                if generation == self.generation and len(self._entries) < MAX_ENTRIES:
                    self._entries[hostname] = creator
        return creator

    def __len__(self) -> int:
        return len(self._entries)

    # --- the listener ---------------------------------------------------------------------
    listener_name = "tenant-routing-listener"  # the thread's name (a subclass has its own)

    def _start_listener(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            # A forked child inherits the parent's entries but not its thread: start afresh.
            self._pid = os.getpid()
            self._entries.clear()
            self.generation += 1
            self.listening = False
            self._stop = threading.Event()
            params = _listener_params()
            self._thread = threading.Thread(
                target=self._listen,
                args=(params, self._stop),
                name=self.listener_name,
                daemon=True,
            )
            self._thread.start()

    # What a subclass changes: the channels it hears, how long it waits for a notification
    # before `_on_idle`, and what a notification drops.
    channels: tuple[str, ...] = (CHANNEL,)
    wait_seconds = 0.5

    def _on_notify(self, note) -> None:
        self.invalidate()

    def _on_idle(self) -> None:
        """After each wait for notifications (a subclass's delayed work)."""

    def _listen(self, params: dict, stop: threading.Event) -> None:
        backoff = 0.1
        params = {**params, "application_name": self.listener_name}
        while not stop.is_set():
            try:
                with psycopg.connect(**params, autocommit=True) as conn:
                    self._listen_conn = conn
                    for channel in self.channels:
                        conn.execute(f"LISTEN {channel}")
                    self.invalidate()
                    self.listening = True
                    backoff = 0.1
                    while not stop.is_set():
                        for note in conn.notifies(timeout=self.wait_seconds):
                            self._on_notify(note)
                        self._on_idle()
            except Exception as exc:  # reconnect; meanwhile nothing is cached
                if not stop.is_set():
                    logger.warning("%s lost its connection: %s", self.listener_name, exc)
            finally:
                self.listening = False
                self._listen_conn = None
                self.invalidate()
            stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)

    def wait_listening(self, timeout: float = 5.0) -> bool:
        """Start the listener if needed and wait until it is connected (tests, warm-up)."""
        import time

        if self._pid != os.getpid():
            self._start_listener()
        deadline = time.monotonic() + timeout
        while not self.listening and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.listening

    def stop(self) -> None:
        with self._lock:
            stop, thread, self._pid = self._stop, self._thread, None
            stop.set()
        conn = self._listen_conn
        if conn is not None:
            try:
                conn.cancel_safe()
            except Exception:
                pass
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
        self.listening = False
        self.invalidate()


def _listener_params() -> dict:
    db = connections["default"].settings_dict
    params = {
        "dbname": db["NAME"],
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
        "host": db.get("HOST") or None,
        "port": db.get("PORT") or None,
    }
    for key in ("sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword"):
        if key in db.get("OPTIONS", {}):
            params[key] = db["OPTIONS"][key]
    return {k: v for k, v in params.items() if v is not None}


def _routing_sql(where: str) -> str:
    """Creators with their hosts, from the public tables, fully qualified: no search_path."""
    public = quote_schema_name(get_public_schema_name())
    domains = f"{public}.{quote_schema_name(Domain._meta.db_table)}"
    custom = f"{public}.{quote_schema_name(CustomDomain._meta.db_table)}"
    # `canonical_host`: the store's first verified custom domain that routes, where its other
    # hosts redirect buyers (tenants.domains); `is_custom_host`: this host is one of them.
    return (
        "SELECT c.*, d.domain AS routed_host, "
        f"(SELECT cd.domain FROM {custom} cd JOIN {domains} cdd ON cdd.domain = cd.domain "
        " AND cdd.tenant_id = c.id WHERE cd.creator_id = c.id AND cd.verified_at IS NOT NULL "
        " ORDER BY cd.verified_at, cd.id LIMIT 1) AS canonical_host, "
        f"EXISTS (SELECT 1 FROM {custom} cd WHERE cd.domain = d.domain "
        " AND cd.creator_id = c.id) AS is_custom_host "
        f"FROM {domains} d "
        f"JOIN {public}.{quote_schema_name(Creator._meta.db_table)} c ON c.id = d.tenant_id "
        f"{where}"
    )


def _routing_rows(sql: str, params: list) -> list[Creator]:
    suspend = getattr(connection, "search_path_not_needed", None)
    if suspend is None:  # stock backend: switch to public like TenantMainMiddleware does
        connection.set_schema_to_public()
        return list(Creator.objects.raw(sql, params))
    with suspend():
        return list(Creator.objects.raw(sql, params))


def creator_for_host(hostname: str) -> Creator | None:
    """One indexed query on the public tables."""
    found = _routing_rows(_routing_sql("WHERE d.domain = %s"), [hostname])
    return found[0] if found else None


def routing_preload(limit: int | None = None) -> int:
    """Fill the cache with every host (up to `limit`) in one query: after a restart a store's
    first request then needs no lookup of its own (config.warm). Returns how many were cached;
    0 when the listener is not connected (nothing may be cached then) or a change arrived."""
    cache = routing_cache
    if not (cache.enabled and cache.wait_listening()):
        return 0
    limit = MAX_ENTRIES if limit is None else min(limit, MAX_ENTRIES)
    generation = cache.generation
    rows = _routing_rows(_routing_sql("ORDER BY d.id LIMIT %s"), [limit])
    with cache._lock:
        if generation != cache.generation:
            return 0
        room = MAX_ENTRIES - len(cache._entries)
        for creator in rows[:room]:
            cache._entries.setdefault(creator.routed_host, creator)
    return min(len(rows), room)


routing_cache = RoutingCache()


def listener_stop() -> None:
    routing_cache.stop()


# --- invalidation from this process ---------------------------------------------------------
def _routing_changed(sender, using=None, **kwargs) -> None:
    routing_cache.invalidate()
    conn = connections[using or "default"]
    if conn.in_atomic_block:
        # Until commit, another request may cache what it reads; drop it again at the end of
        # the transaction either way (the backend calls back on rollback).
        conn.routing_changed_in_transaction = True
        transaction.on_commit(routing_cache.invalidate, using=using)


for _model in (Creator, Domain, CustomDomain):
    post_save.connect(_routing_changed, sender=_model, dispatch_uid=f"routing-save-{_model}")
    post_delete.connect(_routing_changed, sender=_model, dispatch_uid=f"routing-del-{_model}")


# --- custom domains --------------------------------------------------------------------------
# Buyers' pages on a store's other hosts (its platform subdomain) move to its verified custom
# domain for good (301, path and query kept). Not moved: the store's admin (the creator's
# session lives on the host they logged in on, and the sign-up hand-off lands there), the API
# and webhooks (machine clients configured with a URL, which may not follow redirects or would
# drop a POST body), static and media files, and anything but GET/HEAD (a form post must not
# be turned into a GET).
NOT_REDIRECTED = ("/admin/", "/api/", "/webhooks/", "/static/", "/media/")


def _custom_domain_redirect(request, creator: Creator):
    canonical = getattr(creator, "canonical_host", None)
    if not canonical or getattr(creator, "is_custom_host", False):
        return None
    if request.method not in ("GET", "HEAD") or request.path.startswith(NOT_REDIRECTED):
        return None
    host = request.get_host()
    port = host.rsplit(":", 1)[1] if ":" in host and not host.endswith("]") else ""
    location = f"{request.scheme}://{canonical}{':' + port if port else ''}"
    return HttpResponsePermanentRedirect(location + request.get_full_path())


# --- the middleware --------------------------------------------------------------------------
class TenantRoutingMiddleware:
    """Put the request in its creator's schema; unknown hosts get 404 (as django-tenants does)."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.public_schema = get_public_schema_name()
        self.public_urlconf = getattr(settings, "PUBLIC_SCHEMA_URLCONF", None)

    def __call__(self, request):
        try:
            hostname = domain_key(remove_www(request.get_host().split(":")[0]))
        except DisallowedHost:
            return HttpResponseNotFound()
        creator = routing_cache.resolve(hostname)
        if creator is None:
            connection.set_schema_to_public()
            raise Http404(f'No tenant for hostname "{hostname}"')
        redirect = _custom_domain_redirect(request, creator)
        if redirect is not None:
            connection.set_schema_to_public()
            return redirect
        # A copy: views may set attributes on request.tenant; the cached one stays clean.
        tenant = copy.copy(creator)
        tenant.domain_url = hostname
        request.tenant = tenant
        connection.set_tenant(tenant)
        if self.public_urlconf and tenant.schema_name == self.public_schema:
            request.urlconf = self.public_urlconf
            set_urlconf(self.public_urlconf)
        return self.get_response(request)
