"""Partner tasks: webhook delivery attempts and the sweep for lost ones (each only calls the
service)."""

from core.tasks import tenant_task
from partners import services


@tenant_task(name="partners.webhook_deliver")
def webhook_deliver(*, delivery_id: int) -> str | None:
    delivery = services.webhook_deliver(delivery_id=delivery_id)
    return delivery.status if delivery else None


@tenant_task(name="partners.webhook_deliveries_overdue")
def webhook_deliveries_overdue() -> int:
    """Periodic (per tenant via core.tasks.fan_out): deliveries whose task was lost."""
    return services.webhook_deliveries_overdue()
