"""Settings shared by every environment; values come from the environment (django-environ)."""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()

SECRET_KEY = env("SECRET_KEY", default="dev-only-insecure-key-change-me")
# Secrets we must read back (webhook signing keys) are encrypted at rest with keys derived from
# SECRET_KEY (+ SECRET_KEY_FALLBACKS when rotating) and these salts (core/fields.py).
SALT_KEY = env.list("FIELD_ENCRYPTION_SALTS", default=["storefront-sealed-fields-v1"])
DEBUG = env.bool("DEBUG", default=False)
# The platform's own domain: creators get <slug>.<PLATFORM_DOMAIN> unless they bring one.
PLATFORM_DOMAIN = env("PLATFORM_DOMAIN", default="localhost")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[PLATFORM_DOMAIN, f".{PLATFORM_DOMAIN}"])

# --- Tenancy (django-tenants): one PostgreSQL schema per creator -------------------------
SHARED_APPS = [
    "django_tenants",
    "tenants",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "core",
]
TENANT_APPS = [
    # Auth, admin and sessions live in each creator's schema too: a creator's staff users
    # and sessions exist only there, so a login to one store is worthless on another.
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "storefront",
    "subscriptions",
    "offers",
    "payments",
    "analytics",
    "audit",
    "partners",
]
INSTALLED_APPS = (
    # The admin with the store's site (storefront/admin_config.py), same app label.
    [
        "storefront.admin_config.StoreAdminConfig" if a == "django.contrib.admin" else a
        for a in SHARED_APPS
    ]
    + [a for a in TENANT_APPS if a not in SHARED_APPS]
    + [
        "rest_framework",
        "api",  # the partner API's shared parts (strict string fields, api/apps.py)
        "drf_spectacular",
        "drf_spectacular_sidecar",  # Swagger UI's files, served from our static (no CDN)
    ]
)
TENANT_MODEL = "tenants.Creator"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
PUBLIC_SCHEMA_URLCONF = "config.urls_public"
ROOT_URLCONF = "config.urls_tenant"
SHOW_PUBLIC_IF_NO_TENANT_FOUND = False
# New creators' schemas are cloned from this migrated template (tenants.provisioning); it is
# kept current by `migrate_tenants`. The leading underscore keeps it clear of creator schemas.
TENANT_BASE_SCHEMA = "_tenant_template"
# Schemas cloned ahead of time so a sign-up renames one instead of building ~270 relations
# (tenants/pool.py). Beat's tenants-spares-refill keeps this many waiting, making at most
# TENANT_SPARE_REFILL_MAX per run; 0 turns the pool off (sign-ups clone on the spot).
TENANT_SPARE_SCHEMAS = env.int("TENANT_SPARE_SCHEMAS", default=25)
TENANT_SPARE_REFILL_MAX = env.int("TENANT_SPARE_REFILL_MAX", default=50)

DATABASES = {
    "default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/storefront"),
}
# django-tenants' backend with a lazy search_path: SET only when the schema really changes.
DATABASES["default"]["ENGINE"] = "tenants.backend"
# A connection is closed at the end of the request (or task) in which it has served this many
# distinct store schemas: PostgreSQL keeps the catalog caches of every schema a backend has
# touched for the backend's life (~0.1 MB per store; ~1 GB after 10,000), and its resident size
# also counts the server's shared memory it has touched, which grows with the stores it reads.
# At 10,000 stores a backend's RSS was 191-207 MB with 100, 319 MB with 200 and 410-472 MB with
# 500 (bench/README.md "Backend memory by stores per connection"); 100 costs one reconnect per
# 100 new stores, made after a response. 0: never (tenants/backend/base.py).
TENANT_SCHEMAS_PER_CONNECTION = env.int("TENANT_SCHEMAS_PER_CONNECTION", default=100)
# ... and its replacement opened and warmed right then, after the response has gone.
TENANT_CONNECTION_WARM = "config.warm.warm_connection"
# Each web worker imports the URLconfs, compiles the buyer templates and reads the whole
# host → store table at start, before its first request (config/warm.py).
WEB_WARM_ON_START = env.bool("WEB_WARM_ON_START", default=True)
# ... and gunicorn's post_worker_init opens and warms this many request threads' connections
# (config/gunicorn.py); -1: all WEB_THREADS.
WEB_WARM_THREADS = env.int("WEB_WARM_THREADS", default=-1)
# How many hosts the warm-up loads into the routing cache (≈ 0.8 KB each per worker).
WEB_WARM_HOSTS = env.int("WEB_WARM_HOSTS", default=100_000)
# --- Fairness between stores (core/fairness.py; docs/security.md) -------------------------
# Web request slots: gunicorn workers (× threads). One store may hold at most half of them at
# once; its requests beyond that are answered 503 + Retry-After, so the other half is always
# free for the other stores. 0 turns the limit off.
WEB_CONCURRENCY = env.int("WEB_CONCURRENCY", default=2)
# Threads per gunicorn worker (gthread, as the Procfile runs it; docs/serving.md):
# slots = WEB_CONCURRENCY × WEB_THREADS. Set WEB_THREADS=1 for sync workers.
WEB_THREADS = env.int("WEB_THREADS", default=32)
STORE_MAX_IN_FLIGHT = env.int(
    "STORE_MAX_IN_FLIGHT", default=max(1, WEB_CONCURRENCY * WEB_THREADS // 2)
)
# Entries of a process killed mid-request stop counting after this (gunicorn --timeout).
STORE_IN_FLIGHT_TTL_SECONDS = env.int("STORE_IN_FLIGHT_TTL_SECONDS", default=60)
STORE_BUSY_RETRY_AFTER_SECONDS = 1
# Threads of one web process that may run a heavy request's code at once (core/cpu_slots.py):
# the rest wait on a lock, not on the GIL, so a page drawn per change is not queued behind 50
# gateway answers arriving together. A request waits at most WEB_CPU_SLOT_WAIT_SECONDS for a
# slot, then runs without one. 0 turns it off. One slot per process: with the Procfile's two
# processes on two cores, that is one heavy thread per core, and a kept page waits behind one
# thread of its process, not two (bench/README.md "CPU slots": p99 41-45 ms with 1, 59-80 ms
# with 2, 95-200 ms with none, at the same paid checkouts per second).
WEB_CPU_SLOTS = env.int("WEB_CPU_SLOTS", default=1)
WEB_CPU_SLOT_WAIT_SECONDS = env.float("WEB_CPU_SLOT_WAIT_SECONDS", default=2.0)

# Never ATOMIC_REQUESTS: a gateway call must not happen inside an open transaction.
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASE_ROUTERS = ("core.replica.ReplicaRouter", "django_tenants.routers.TenantSyncRouter")
# A streaming replica for the dashboard's reads (core/replica.py): used when it has replayed
# what the primary had when the read began, waiting at most DATABASE_REPLICA_MAX_LAG seconds;
# otherwise, or when it is down (then not tried for DATABASE_REPLICA_RETRY_SECONDS), the primary.
if env("DATABASE_REPLICA_URL", default=""):
    DATABASES["replica"] = {
        **env.db("DATABASE_REPLICA_URL"),
        "ENGINE": "tenants.backend",
        "ATOMIC_REQUESTS": False,
        "CONN_MAX_AGE": DATABASES["default"]["CONN_MAX_AGE"],
        # The test run has no replica of its test database unless a test starts one
        # (tests/analytics/test_replica.py): reads in tests use the primary's connection.
        "TEST": {"MIRROR": "default"},
    }
DATABASE_REPLICA_MAX_LAG = env.float("DATABASE_REPLICA_MAX_LAG", default=0.5)
DATABASE_REPLICA_RETRY_SECONDS = env.float("DATABASE_REPLICA_RETRY_SECONDS", default=5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

MIDDLEWARE = [
    "core.security.SecurityHeadersMiddleware",  # first: even probes and 404s get the headers
    "core.middleware.HealthCheckMiddleware",
    # Host → creator from an in-process cache that every process drops on any change.
    "tenants.routing.TenantRoutingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # A store's share of the request slots, after routing (core/fairness.py); static files
    # (WhiteNoise, above) and the health check never reach it.
    "core.fairness.StoreConcurrencyMiddleware",
    "django.middleware.gzip.GZipMiddleware",
    # Before sessions, CSRF, auth and views: NUL, lone surrogates and over-long text in the
    # path, query, form, cookies, headers or a JSON body are refused (400) or dropped here.
    "core.boundary.InputBoundaryMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "core.ratelimit.LoginThrottleMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, right before the view: a heavy view runs holding one of the process's
    # WEB_CPU_SLOTS, given back while it waits on the gateway (core/cpu_slots.py).
    "core.cpu_slots.CpuSlotMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.security.csp_nonce",
                "storefront.context_processors.brand",
            ],
        },
    },
]
WSGI_APPLICATION = "config.wsgi.application"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / ".local" / "staticfiles"
MEDIA_ROOT = env("MEDIA_ROOT", default=str(BASE_DIR / ".local" / "media"))
MEDIA_URL = "/media/"
# Uploaded files land under MEDIA_ROOT/<schema>/…: one creator's files never share a path
# with another's.
MULTITENANT_RELATIVE_MEDIA_ROOT = "%s"
# Product deliverables: a private root, outside MEDIA_ROOT and anything a URL maps to
# (storefront/storage.py). Files leave only through the download view, after the line's check.
DELIVERABLES_ROOT = env("DELIVERABLES_ROOT", default=str(BASE_DIR / ".local" / "deliverables"))
# How the download view hands a file over. Empty: Django streams it (development, tests).
# "X-Accel-Redirect" (nginx, or Caddy's reverse_proxy handle_response): the response carries
# DELIVERY_ACCEL_PREFIX + "<schema>/<file>", an internal location aliased to DELIVERABLES_ROOT.
# "X-Sendfile" (Apache mod_xsendfile, lighttpd): the header carries the file's absolute path.
DELIVERY_ACCEL_HEADER = env("DELIVERY_ACCEL_HEADER", default="")
DELIVERY_ACCEL_PREFIX = env("DELIVERY_ACCEL_PREFIX", default="/_deliverables/")
# Seconds a download link on the order page stays valid (the page makes fresh ones).
DELIVERY_LINK_MAX_AGE = env.int("DELIVERY_LINK_MAX_AGE", default=600)
# How long a checkout that was never paid holds a use of a limited coupon before the use is
# given back (storefront.services.coupon_holds, from beat); a later Pay takes it again if any
# is left.
COUPON_HOLD_MINUTES = env.int("COUPON_HOLD_MINUTES", default=60)
STORAGES = {
    "default": {"BACKEND": "django_tenants.files.storage.TenantFileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# The longest single text value (query, form field, header, JSON string) a request may carry
# (core/boundary.py); longer is refused with a 400 before any view runs.
INPUT_MAX_TEXT_LENGTH = env.int("INPUT_MAX_TEXT_LENGTH", default=20_000)

# --- Cache and broker ---------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        # Every key carries the current schema, so tenant A's cached value is never read
        # through tenant B's host.
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        "OPTIONS": {"IGNORE_EXCEPTIONS": True, "SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
    }
}
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A broker outage must never end the worker (issue 20, item 9): retry the connection for ever
# (the default gives up after 100 tries), and use kombu's Redis transport with the guard in
# core/broker.py, without which a worker holding unacknowledged messages exits when the
# connection drops. Only for redis:// (rediss:// keeps kombu's own TLS handling).
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
if CELERY_BROKER_URL.startswith("redis://"):
    CELERY_BROKER_TRANSPORT = "core.broker:RedisTransport"
# Fewer messages reserved per process, so fewer wait for the visibility timeout after an
# outage (a reserved, unacknowledged message is requeued only once it is that old).
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A late-acked task running when the connection drops finishes; its ack is lost with the
# connection, so it runs again after the visibility timeout. Every acks_late task claims its
# work once (storefront/tasks.py), so that rerun is a no-op; cancelling it mid-charge is not
# better. Explicit, so the choice is visible (Celery 6 changes the default).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_TENANT_CACHE_SECONDS = 30
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Loops over records (core/loops.py): a record that fails this many runs in a row is
# quarantined (never retried by its loop) and listed in the store admin under "Needs attention".
LOOP_QUARANTINE_AFTER = env.int("LOOP_QUARANTINE_AFTER", default=5)

# --- Payments -----------------------------------------------------------------------------
# Networks that outbound requests to configured URLs (webhooks) may reach although they are not
# public (core/outbound.py); production lists none. The demo and tests add loopback for their
# local receiver. Comma-separated CIDRs, e.g. "127.0.0.0/8,::1/128".
OUTBOUND_ALLOWED_NETWORKS = env.list("OUTBOUND_ALLOWED_NETWORKS", default=[])

STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", default="")
STRIPE_PUBLISHABLE_KEY = env("STRIPE_PUBLISHABLE_KEY", default="pk_test_local")
# Empty means Stripe itself; the local runner points this at localstripe.
STRIPE_API_BASE = env("STRIPE_API_BASE", default="")
STRIPE_JS_URL = env("STRIPE_JS_URL", default="https://js.stripe.com/v3/")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", default="")
PAYMENT_GATEWAY_TIMEOUT_SECONDS = env.float("PAYMENT_GATEWAY_TIMEOUT_SECONDS", default=10.0)
# Stripe Connect (payments.connect): the signing secret of the platform's Connect endpoint
# (/webhooks/stripe-connect/; empty = STRIPE_WEBHOOK_SECRET) and new accounts' country.
STRIPE_CONNECT_WEBHOOK_SECRET = env("STRIPE_CONNECT_WEBHOOK_SECRET", default="")
CONNECT_DEFAULT_COUNTRY = env("CONNECT_DEFAULT_COUNTRY", default="US")
# The platform's default fee per settled charge (a store's own fee_bps/fee_fixed override it):
# basis points of the charge plus a fixed part in minor units (payments.transfers).
PLATFORM_FEE_BPS = env.int("PLATFORM_FEE_BPS", default=500)
PLATFORM_FEE_FIXED = env.int("PLATFORM_FEE_FIXED", default=30)

# Custom domains (tenants.domains): the host a creator's CNAME points at (the platform's
# ingress), and the DNS resolver class used to verify records (tenants.dns).
CUSTOM_DOMAIN_TARGET = env("CUSTOM_DOMAIN_TARGET", default=PLATFORM_DOMAIN)
CUSTOM_DOMAIN_RESOLVER = env("CUSTOM_DOMAIN_RESOLVER", default="tenants.dns.SystemResolver")
# Self-serve sign-up (tenants.signup): a form sent back sooner than this after it was drawn
# is refused as a bot's.
SIGNUP_MIN_FILL_SECONDS = env.float("SIGNUP_MIN_FILL_SECONDS", default=3.0)

# --- Email --------------------------------------------------------------------------------
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default=f"store@{PLATFORM_DOMAIN}")
# Receipts carry their invoices as PDFs (storefront.services.receipts); the demo's seeded
# history turns this off for its own receipts, which nobody reads.
INVOICE_PDF_ATTACHED = True
# Stores' own sending domains (tenants.sending): the SPF mechanism their TXT record includes
# (the mail provider's or the platform's relays) and the DKIM selector prefix.
MAIL_SPF_INCLUDE = env("MAIL_SPF_INCLUDE", default=f"_spf.{PLATFORM_DOMAIN}")
MAIL_DKIM_SELECTOR_PREFIX = env("MAIL_DKIM_SELECTOR_PREFIX", default="sf")
# Bounces and complaints (tenants.mailevents): the mail provider's webhook is signed with this
# secret (empty: the webhook refuses everything); a Maildir of DSN/ARF reports may be read too.
MAIL_EVENTS_SECRET = env("MAIL_EVENTS_SECRET", default="")
MAIL_BOUNCE_MAILDIR = env("MAIL_BOUNCE_MAILDIR", default="")

# --- Privacy and retention (storefront.privacy) -------------------------------------------
# Stored gateway webhook events and outbound partner deliveries are deleted after this many
# days (beat: storefront.retention_prune); an export's document is kept this many days.
RETENTION_GATEWAY_WEBHOOK_DAYS = env.int("RETENTION_GATEWAY_WEBHOOK_DAYS", default=90)
RETENTION_DELIVERY_LOG_DAYS = env.int("RETENTION_DELIVERY_LOG_DAYS", default=30)
PRIVACY_EXPORT_KEEP_DAYS = env.int("PRIVACY_EXPORT_KEEP_DAYS", default=7)

# --- Tax (storefront.tax) ------------------------------------------------------------------
# The engine that decides rates (a dotted path to a TaxProvider; empty: the creator's rate
# table), the VIES client for EU VAT IDs, and an optional GeoIP country database (none is
# shipped; without it the IP address is no evidence).
TAX_PROVIDER = env("TAX_PROVIDER", default="")
VIES_CLIENT = env("VIES_CLIENT", default="")
GEOIP_DATABASE = env("GEOIP_DATABASE", default="")

# Failed partner API authentications per client address and store before a 429 (core.ratelimit).
API_AUTH_FAILURE_RATE = env("API_AUTH_FAILURE_RATE", default="20/m")

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "api.schema.AutoSchema",
    # Partners only: a store API key in `Authorization: Bearer …` (no sessions, so no CSRF).
    "DEFAULT_AUTHENTICATION_CLASSES": ["partners.api.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["api.auth.HasKeyScope"],
    "DEFAULT_THROTTLE_CLASSES": ["api.auth.ApiKeyThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.boundary.CheckedJSONParser"],
    "DEFAULT_FILTER_BACKENDS": [
        "api.filters.QueryParamsCheck",
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "api.filters.BoundedLimitOffset",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Creator storefront partner API",
    "VERSION": "1.0.0",
    "DESCRIPTION": (
        "One store's API, served on the store's own domain. Authenticate with a store API key "
        "(`Authorization: Bearer sfk_…`) created in the store's admin. Errors are "
        '`{"error": {"code", "message", "fields"}}`. POSTs that move money need an '
        "`Idempotency-Key` header. Outbound webhooks are signed: `X-Storefront-Signature: "
        'v1=<hex HMAC-SHA256 of "<X-Storefront-Timestamp>.<body>">` with the subscription\'s '
        "secret; refuse timestamps older than five minutes. Each delivery names its store "
        "(`X-Storefront-Store`, `store` in the body) and its event (`X-Storefront-Delivery: "
        "evt_…`, the same on every retry and unique across stores: deduplicate on it). "
        "Redirects are not followed."
    ),
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Swagger UI from our own static files: no CDN to trust, and the CSP's 'self' covers it.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # No NUL in strings, no empty decimals: the schema allows nothing the server refuses.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.postprocess_strict_strings",
    ],
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "storefront.models.OrderStatus",
        "OrderLineKindEnum": "storefront.models.LineKind",
        "OfferKindEnum": "offers.models.OfferKind",
        "OfferStatusEnum": "offers.models.Offer.Status",
        "ProductStatusEnum": "storefront.models.Product.Status",
        "CouponKindEnum": "offers.models.CouponKind",
        "RefundStatusEnum": "payments.models.RefundStatus",
        "EventNameEnum": "analytics.models.EventName",
        "ExperimentKindEnum": "analytics.models.ExperimentKind",
        "ExperimentStatusEnum": "analytics.models.ExperimentStatus",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Card numbers, keys, secrets and credentials never reach a log line (core/logging.py).
    "filters": {"redact_secrets": {"()": "core.logging.RedactSecretsFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_secrets"],
        },
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"stripe": {"level": "WARNING"}},
}
