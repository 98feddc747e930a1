from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"

    def ready(self) -> None:
        from core.health import readiness_check_register
        from payments.gateway import get_gateway

        # /readyz reports the gateway: registered here so that core imports no product app.
        readiness_check_register("gateway", lambda: get_gateway().ping())
