"""Partner tasks: webhook delivery attempts (each only calls the service)."""

from core.tasks import tenant_task
from partners import services


@tenant_task(name="partners.webhook_deliver")
def webhook_deliver(*, delivery_id: int) -> str | None:
    delivery = services.webhook_deliver(delivery_id=delivery_id)
    return delivery.status if delivery else None
