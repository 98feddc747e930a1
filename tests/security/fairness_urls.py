"""A tenant URLconf for the fairness tests: a view that stays in flight until released."""

import threading

from django.http import HttpResponse
from django.urls import path

entered = threading.Semaphore(0)
release = threading.Event()


def hold(request):
    entered.release()
    release.wait(30)
    return HttpResponse("held")


def ok(request):
    return HttpResponse("ok")


in_view: dict[str, int] = {}
most_in_view: dict[str, int] = {}
_lock = threading.Lock()


def work(request):
    """50 ms of "work", counting how many requests of each host are inside at once."""
    host = request.get_host().split(":")[0]
    with _lock:
        in_view[host] = in_view.get(host, 0) + 1
        most_in_view[host] = max(most_in_view.get(host, 0), in_view[host])
    try:
        release.wait(0.05)
        return HttpResponse("done")
    finally:
        with _lock:
            in_view[host] -= 1


urlpatterns = [path("hold/", hold), path("ok/", ok), path("work/", work)]
