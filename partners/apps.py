from django.apps import AppConfig


class PartnersConfig(AppConfig):
    name = "partners"
    verbose_name = "Partner API and webhooks"

    def ready(self) -> None:
        # analytics sits below partners and must not import it: partners registers a listener.
        from django.db.models.signals import post_delete, post_save

        from analytics.services import event_listener_register, notice_listener_register
        from core.logging import register_secret_pattern
        from partners.models import WebhookSubscription
        from partners.services import (
            KEY_PATTERN,
            on_event_committed,
            on_notice_committed,
            webhooks_changed,
        )

        post_save.connect(webhooks_changed, sender=WebhookSubscription, dispatch_uid="wh-any")
        post_delete.connect(webhooks_changed, sender=WebhookSubscription, dispatch_uid="wh-any")
        event_listener_register(on_event_committed)
        notice_listener_register(on_notice_committed)
        register_secret_pattern(KEY_PATTERN, "[REDACTED:api-key]")
