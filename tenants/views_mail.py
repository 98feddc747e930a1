"""The mail provider's bounce and complaint webhook, on the platform's domain."""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from django_tenants.utils import get_public_schema_name, schema_context

from core.boundary import raw_body_view
from tenants import mailevents


@csrf_exempt  # the provider cannot send a CSRF token; the signature is the authentication
@require_POST
@raw_body_view
def mail_events_webhook(request):
    try:
        with schema_context(get_public_schema_name()):
            added = mailevents.webhook_receive(
                body=request.body, signature=request.headers.get("X-Mail-Signature", "")
            )
    except mailevents.MailEventRefused as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse({"suppressed": added})
