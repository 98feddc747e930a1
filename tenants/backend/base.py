"""django-tenants' backend, but `SET search_path` is sent only when the schema really changes.

Stock django-tenants forgets the applied search_path on every `set_tenant()` and re-sends it on
the next cursor, so every request (and every `schema_context`) pays a round trip even when the
connection is already in the right schema. Here the wrapper remembers what the server has and
compares: same schema, no statement; another schema, exactly one `SET`. The remembered value is
dropped whenever the server may have lost it: on connect and close, and on rollback or
savepoint rollback (a `SET` inside an aborted transaction is undone by PostgreSQL).

Connection recycling: PostgreSQL keeps, per backend and for its whole life, the catalog cache
entries of every relation it has opened, and each schema has its own relations: a connection
that has served 10,000 stores held about 1 GB. The wrapper counts the distinct schemas a
connection has been switched to; once that reaches `TENANT_SCHEMAS_PER_CONNECTION` (its
default in config/settings/base.py; 0 for no bound) the connection is closed at the end of
the request (Django's `close_old_connections`), never in the middle of one, and a fresh one
is opened and warmed
(TENANT_CONNECTION_WARM). A backend's memory is thereby bounded by what that many schemas cost
(bench/README.md "Cold stores and memory").
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

import django.db.utils
import psycopg
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS
from django.db.backends.postgresql.creation import DatabaseCreation as PgDatabaseCreation
from django.db.backends.utils import CursorWrapper
from django.utils.asyncio import async_unsafe
from django.utils.module_loading import import_string
from django_tenants.postgresql_backend import base as tenants_base
from django_tenants.utils import quote_schema_name

logger = logging.getLogger(__name__)


class DatabaseCreation(PgDatabaseCreation):
    def _destroy_test_db(self, test_database_name, verbosity):
        # The routing listener holds a LISTEN connection to the test database; DROP DATABASE
        # would wait for it forever.
        from tenants import routing

        routing.listener_stop()
        super()._destroy_test_db(test_database_name, verbosity)


class DatabaseWrapper(tenants_base.DatabaseWrapper):
    creation_class = DatabaseCreation

    def __init__(self, *args, **kwargs):
        self._search_path_suspended = False
        self.schemas_served: set[str] = set()
        super().__init__(*args, **kwargs)

    @async_unsafe
    def connect(self):
        self.search_path_set_schemas = None
        self.schemas_served = set()
        super().connect()

    @property
    def schemas_per_connection(self) -> int:
        return settings.TENANT_SCHEMAS_PER_CONNECTION  # config/settings/base.py

    def close_if_unusable_or_obsolete(self):
        """Django's end-of-request check, plus: retire a connection that has served enough
        schemas (its backend's catalog caches grow with each one)."""
        super().close_if_unusable_or_obsolete()
        limit = self.schemas_per_connection
        if (
            self.connection is not None
            and limit
            and len(self.schemas_served) >= limit
            and not self.in_atomic_block
        ):
            self.close()
            self._rewarm()

    def _rewarm(self) -> None:
        """Open the replacement now, at the end of the request (its response is sent), rather
        than on the next buyer's request: a new backend's first queries are the slow ones.
        TENANT_CONNECTION_WARM names the function that opens and warms it (config.warm)."""
        warm = getattr(settings, "TENANT_CONNECTION_WARM", "")
        if not warm or self.alias != DEFAULT_DB_ALIAS:
            return
        try:
            import_string(warm)()
        except Exception:  # the next query connects as usual
            logger.warning("warming a replacement connection failed", exc_info=True)

    def set_tenant(self, tenant, include_public=True):
        """Select the tenant for the next queries; sends nothing to the server by itself."""
        previous = self.schema_name
        self.tenant = tenant
        self.schema_name = tenant.schema_name
        self.include_public_schema = include_public
        self.set_settings_schema(self.schema_name)
        if tenants_base.EXTRA_SET_TENANT_METHOD:
            tenants_base.EXTRA_SET_TENANT_METHOD(self, tenant)
        if previous != self.schema_name:
            # Content type ids are per schema; the manager's cache is not.
            ContentType.objects.clear_cache()

    @contextmanager
    def search_path_not_needed(self):
        """Run fully schema-qualified SQL without first switching the connection's schema."""
        before = self._search_path_suspended
        self._search_path_suspended = True
        try:
            yield
        finally:
            self._search_path_suspended = before

    def _handle_search_path(self, cursor=None):
        if self._setting_search_path or self._search_path_suspended:
            return
        if not self.schema_name:
            raise ImproperlyConfigured(
                "Database schema not set. Did you forget to call set_schema() or set_tenant()?"
            )
        search_paths = self._get_cursor_search_paths()
        if search_paths == self.search_path_set_schemas:
            return
        self._setting_search_path = True
        # The caller's cursor is already Django's wrapper; a throwaway one (for a named cursor,
        # which can carry one statement only) gets wrapped, so `connection.execute_wrapper()`
        # sees every SET either way (tests count them).
        raw_cursor = self.connection.cursor() if cursor is None else None
        try:
            sql = "SET search_path = " + ",".join(quote_schema_name(s) for s in search_paths)
            (cursor if cursor is not None else CursorWrapper(raw_cursor, self)).execute(sql)
        except (django.db.utils.DatabaseError, psycopg.InternalError):
            self.search_path_set_schemas = None
        else:
            self.search_path_set_schemas = search_paths
            self.schemas_served.add(search_paths[0])
        finally:
            self._setting_search_path = False
            if raw_cursor is not None:
                raw_cursor.close()

    # --- the routing cache must not outlive a rolled-back change (tenants.routing) ----------
    @async_unsafe
    def commit(self):
        super().commit()
        self.routing_changed_in_transaction = False

    @async_unsafe
    def rollback(self):
        super().rollback()
        if getattr(self, "routing_changed_in_transaction", False):
            self.routing_changed_in_transaction = False
            self._routing_invalidate()

    @async_unsafe
    def savepoint_rollback(self, sid):
        super().savepoint_rollback(sid)
        if getattr(self, "routing_changed_in_transaction", False):
            self._routing_invalidate()

    @staticmethod
    def _routing_invalidate():
        from tenants.routing import routing_cache

        routing_cache.invalidate()
