"""Settings for the test suite: the real PostgreSQL, Redis and localstripe, started by bin/test."""

from .base import *  # noqa: F403
from .base import env

DEBUG = False
SECRET_KEY = "test-only-secret-key-not-for-production-use-0123456789"
ALLOWED_HOSTS = ["localhost", ".localhost", "127.0.0.1", "testserver"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES["staticfiles"] = {  # noqa: F405
    "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
}
# Tasks run in the test process unless a test starts a real worker.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
CELERY_TASK_EAGER_PROPAGATES = True
MEDIA_ROOT = env("MEDIA_ROOT", default="/tmp/storefront-test-media")
DELIVERABLES_ROOT = env("DELIVERABLES_ROOT", default="/tmp/storefront-test-deliverables")
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
# A broker that is down must fail the send at once (the outbox keeps the row), not after
# kombu's default connection retries of several seconds.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,  # noqa: F405
    "max_retries": 0,
}
# Creating a tenant migrates its schema; in tests that printed ~25 lines per schema.
TENANT_BASE_MIGRATE_COMMAND = "devtools.quiet_migrate.Command"
# No spare schemas unless a test makes them (tests/tenancy/test_pool.py): a sign-up clones.
TENANT_SPARE_SCHEMAS = 0
# The local webhook receiver (demo, tests) listens on loopback (core/outbound.py).
OUTBOUND_ALLOWED_NETWORKS = env.list(
    "OUTBOUND_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"]
)
# No per-store request cap unless a test turns it on (tests/security/test_fairness.py): the
# suite's live servers and browsers run many requests of one store at once.
STORE_MAX_IN_FLIGHT = env.int("STORE_MAX_IN_FLIGHT", default=0)
# Custom-domain checks never reach the internet in tests: fixed (empty) answers unless a
# test passes its own resolver (tests/tenancy/test_custom_domains.py).
CUSTOM_DOMAIN_RESOLVER = "tenants.dns.StaticResolver"
# A commit need not wait for its WAL to reach the disk here: nothing survives a crash of the
# test database anyway, and the suite commits thousands of times (live servers, workers,
# schemas cloned per test). Each session sets it for itself; the server's setting is untouched.
DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c synchronous_commit=off"  # noqa: F405
