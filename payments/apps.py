from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"

    def ready(self) -> None:
        from core.health import readiness_check_register
        from payments.gateway import get_gateway

        # /readyz reports the gateway: registered here so that core imports no product app.
        readiness_check_register("gateway", lambda: get_gateway().ping())

        # A succeeded charge in a store with a connected account queues its transfer.
        from payments.services import ledger_handler_register, outcome_handler_register
        from payments.transfers import on_attempt_outcome, on_ledger_entry

        outcome_handler_register(on_attempt_outcome)
        # A refund in a store with a connected account queues the reversal of its share.
        ledger_handler_register(on_ledger_entry)
