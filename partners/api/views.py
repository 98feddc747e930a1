"""Small views shared by the partner API."""
from django.http import JsonResponse

from partners.api.errors import error_body


def not_found(request, *args, **kwargs) -> JsonResponse:
    return JsonResponse(error_body("not_found", "No such API endpoint."), status=404)
