from django.apps import AppConfig


class StorefrontConfig(AppConfig):
    name = "storefront"

    def ready(self) -> None:
        # payments sits below storefront and must not import it: it calls back instead.
        from payments.disputes import dispute_handler_register
        from payments.services import ledger_handler_register, outcome_handler_register
        from storefront.services.orders import (
            on_attempt_outcome,
            on_dispute_closed,
            on_ledger_entry,
        )

        outcome_handler_register(on_attempt_outcome)
        ledger_handler_register(on_ledger_entry)
        dispute_handler_register(on_dispute_closed)

        from storefront.page_cache import watch_models

        watch_models()
