"""The creator URLs plus a one-query JSON view for throughput runs."""

from django.db import connection
from django.http import JsonResponse
from django.urls import include, path


def one_query(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM storefront_product")
        (count,) = cursor.fetchone()
    return JsonResponse({"products": count})


urlpatterns = [
    path("bench/one-query/", one_query),
    path("", include("config.urls_tenant")),
]
