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


urlpatterns = [path("hold/", hold), path("ok/", ok)]
