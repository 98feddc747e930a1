"""The creator URLs plus the baseline (a view that does nothing, behind the same middleware) and
the skeleton buyer's view (bench/skeleton.py)."""

import time

from django.http import HttpResponse
from django.urls import include, path

from bench.skeleton import skeleton


def minimal(request):
    return HttpResponse(b"ok", content_type="text/plain")


def slow(request):
    """A page that waits, as one waiting on a slow gateway does (bench/fairness.py)."""
    time.sleep(min(int(request.GET.get("ms", "200")), 2000) / 1000)
    return HttpResponse(b"ok", content_type="text/plain")


urlpatterns = [
    path("bench/minimal/", minimal),
    path("bench/slow/", slow),
    path("bench/skeleton/<int:statements>/<int:transactions>/<int:redis>/<int:gateway>/", skeleton),
    path("", include("config.urls_tenant")),
]
