from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"

    def ready(self) -> None:
        # A succeeded charge in a store with a connected account queues its transfer.
        from payments.services import outcome_handler_register
        from payments.transfers import on_attempt_outcome

        outcome_handler_register(on_attempt_outcome)
