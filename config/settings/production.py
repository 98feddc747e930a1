"""Production settings: every secret from the environment, HTTPS everywhere.

The process refuses to start when a secret is missing or is a development default; the test
suite runs `manage.py check --deploy` against this module and expects no warnings.
"""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import DATABASES, env

DEBUG = False

_DEV_SECRET_PREFIXES = ("dev-only", "test-only", "django-insecure-", "change-me")


def _require(name: str) -> str:
    """An environment value that must be set (no default) and must not be a placeholder."""
    value = env(name, default="")
    if not value.strip():
        raise ImproperlyConfigured(f"{name} must be set in the environment in production.")
    return value


SECRET_KEY = _require("SECRET_KEY")
if SECRET_KEY.startswith(_DEV_SECRET_PREFIXES) or len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
    raise ImproperlyConfigured("SECRET_KEY must be set to a long random value in production.")
# Rotation: the previous key(s) keep old sessions and signed tokens valid for a while.
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set in the environment in production.")

# Credentials come only from the environment: base.py's developer defaults are not used.
_require("DATABASE_URL")
DATABASES["default"].update(
    {k: v for k, v in env.db("DATABASE_URL").items() if k not in ("ENGINE",)}
)
_require("REDIS_URL")
STRIPE_SECRET_KEY = _require("STRIPE_SECRET_KEY")
STRIPE_WEBHOOK_SECRET = _require("STRIPE_WEBHOOK_SECRET")
STRIPE_PUBLISHABLE_KEY = _require("STRIPE_PUBLISHABLE_KEY")
_require("EMAIL_URL")

# --- HTTPS, cookies, headers ---------------------------------------------------------------
# gunicorn sits behind one proxy that terminates TLS and sets X-Forwarded-Proto/-For.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=1)  # core.ratelimit.client_ip
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Serving model and the database connection budget (docs/serving.md) ---------------------
# gunicorn runs gthread workers (Procfile): WEB_CONCURRENCY processes × WEB_THREADS threads, so
# a request waiting on the gateway holds a thread, not a process, and pages that need no
# gateway keep being served. Django keeps one connection per thread (CONN_MAX_AGE, base.py),
# checked before reuse; every process also holds two LISTEN connections (tenants.routing,
# storefront.page_cache).
# The sum must stay under PostgreSQL's max_connections with room for the workers, beat, the
# replica's clients and an operator: DATABASE_CONNECTION_BUDGET is the share the web tier
# may use, and the process refuses to start past it.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Memory per connection (docs/serving.md "Cold stores and memory"): a PostgreSQL backend keeps
# the catalog caches of every store schema it has served (~1 GB after 10,000); a connection is
# retired at request end after TENANT_SCHEMAS_PER_CONNECTION (base.py, 100) distinct stores.
# WEB_WARM_ON_START (base.py, on) warms each worker before its first request, and with the
# Procfile's `-c python:config.gunicorn` opens all WEB_THREADS connections at start: the budget
# below is reached at boot, not later.
DATABASE_CONNECTION_BUDGET = env.int("DATABASE_CONNECTION_BUDGET", default=80)
_web_connections = WEB_CONCURRENCY * (WEB_THREADS + 2)  # noqa: F405
if _web_connections > DATABASE_CONNECTION_BUDGET:
    raise ImproperlyConfigured(
        f"WEB_CONCURRENCY × (WEB_THREADS + 2) = {_web_connections} database connections is over "
        f"DATABASE_CONNECTION_BUDGET ({DATABASE_CONNECTION_BUDGET}); see docs/serving.md."
    )
