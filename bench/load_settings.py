"""Production settings as shipped, plus a minimal baseline view (bench/load_urls.py) and a
static root of the run's own; used by bench/checkout_load.py and the drills only."""

from config.settings.production import *  # noqa: F403
from config.settings.production import env

ROOT_URLCONF = "bench.load_urls"
STATIC_ROOT = env("BENCH_STATIC_ROOT")
# One store at full capacity is what these benches measure: no per-store cap unless asked
# (bench/fairness.py sets STORE_MAX_IN_FLIGHT).
STORE_MAX_IN_FLIGHT = env.int("STORE_MAX_IN_FLIGHT", default=0)
LOGGING = {  # the load would otherwise print a line per gateway timeout
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="ERROR")},
    # Each read the replica could not take is logged (bench/replica_load.py counts them).
    "loggers": {"core.replica": {"level": "INFO"}},
}
# The hosted pages' cache (storefront.page_cache) is on as shipped; STOREFRONT_PAGE_CACHE=0 draws
# every page per request, as before issue 19, for a comparison on the same machine.
STOREFRONT_PAGE_CACHE = env.bool("STOREFRONT_PAGE_CACHE", default=True)
