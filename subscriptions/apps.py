from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"

    def ready(self) -> None:
        # payments sits below and must not import us: it calls back with each outcome.
        from payments.disputes import dispute_handler_register
        from payments.services import ledger_handler_register, outcome_handler_register
        from subscriptions.services import on_attempt_outcome, on_dispute_closed, on_ledger_entry

        outcome_handler_register(on_attempt_outcome)
        ledger_handler_register(on_ledger_entry)
        dispute_handler_register(on_dispute_closed)
