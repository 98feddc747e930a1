from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"

    def ready(self) -> None:
        from core.health import readiness_check_register
        from payments.gateway import get_gateway

        # /readyz reports the gateway: registered here so that core imports no product app.
        readiness_check_register("gateway", lambda: get_gateway().ping())

        # A succeeded charge in a store with a connected account queues its transfer.
        from payments.services import outcome_handler_register
        from payments.transfers import on_attempt_outcome

        outcome_handler_register(on_attempt_outcome)
