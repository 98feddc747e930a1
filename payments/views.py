"""The gateway's webhook endpoint: parse the request, call one service, answer fast."""

from __future__ import annotations

from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from django_tenants.utils import get_public_schema_name, get_tenant_model, tenant_context

from core.boundary import raw_body_view
from payments.webhooks import WebhookRejected, webhook_receive


def _receive(request) -> JsonResponse:
    try:
        event, new = webhook_receive(
            payload=request.body, signature=request.META.get("HTTP_STRIPE_SIGNATURE", "")
        )
    except WebhookRejected as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse({"received": event.event_id, "duplicate": not new})


@csrf_exempt  # the gateway cannot send a CSRF token; the signature is the authentication
@require_POST
@raw_body_view
def stripe_webhook(request):
    """On the creator's own domain: the routing middleware has set the schema."""
    return _receive(request)


@csrf_exempt
@require_POST
@raw_body_view
def stripe_webhook_for_creator(request, slug: str):
    """On the platform's domain (gateways that cannot reach a creator's domain)."""
    creator = (
        get_tenant_model()
        .objects.exclude(schema_name=get_public_schema_name())
        .filter(slug=slug)
        .first()
    )
    if creator is None:
        raise Http404("No such store.")
    with tenant_context(creator):
        return _receive(request)
