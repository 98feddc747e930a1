"""The creator URLs plus the baseline: a view that does nothing, behind the same middleware."""
from django.http import HttpResponse
from django.urls import include, path


def minimal(request):
    return HttpResponse(b"ok", content_type="text/plain")


urlpatterns = [
    path("bench/minimal/", minimal),
    path("", include("config.urls_tenant")),
]
