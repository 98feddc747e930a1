"""Settings for the tenancy benchmarks (bench/tenancy.py); never used by the product.

BENCH_MODE=routed  the platform as shipped (tenants.routing + tenants.backend)
BENCH_MODE=stock   django-tenants' TenantMainMiddleware and backend, the baseline
BENCH_MODE=plain   no tenancy on the request path: plain backend, search_path fixed in the
                   connection options (the "same view without tenancy")
BENCH_NEW_MIGRATION=1 adds bench.benchapp (one migration) to the creator apps.
"""

import os

from config.settings.base import *  # noqa: F403
from config.settings.base import DATABASES, MIDDLEWARE, TENANT_APPS, env

DEBUG = False
ALLOWED_HOSTS = ["*"]
STORAGES["staticfiles"] = {  # noqa: F405
    "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
}
ROOT_URLCONF = "bench.urls"
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
# One store at full capacity is what these benches measure: no per-store cap unless asked
# (bench/fairness.py sets STORE_MAX_IN_FLIGHT).
STORE_MAX_IN_FLIGHT = env.int("STORE_MAX_IN_FLIGHT", default=0)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
DATABASES["default"]["CONN_MAX_AGE"] = 600

MODE = os.environ.get("BENCH_MODE", "routed")
if MODE == "stock":
    DATABASES["default"]["ENGINE"] = "django_tenants.postgresql_backend"
    MIDDLEWARE = [
        "django_tenants.middleware.main.TenantMainMiddleware"
        if m == "tenants.routing.TenantRoutingMiddleware"
        else m
        for m in MIDDLEWARE
    ]
elif MODE == "plain":
    DATABASES["default"]["ENGINE"] = "django.db.backends.postgresql"
    DATABASES["default"]["OPTIONS"] = {
        "options": f"-c search_path={env('BENCH_PLAIN_SCHEMA', default='bench_1')},public"
    }
    MIDDLEWARE = [m for m in MIDDLEWARE if m != "tenants.routing.TenantRoutingMiddleware"]

if os.environ.get("BENCH_NEW_MIGRATION"):
    TENANT_APPS = [*TENANT_APPS, "bench.benchapp"]
    INSTALLED_APPS = [*INSTALLED_APPS, "bench.benchapp"]  # noqa: F405
