"""Middleware that must run before tenant routing."""

from core import health


class HealthCheckMiddleware:
    """Answer /healthz and /readyz on any host, before the tenant lookup (probes use IPs)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path == "/healthz":
            return health.healthz(request)
        if request.path == "/readyz":
            return health.readyz(request)
        return self.get_response(request)
