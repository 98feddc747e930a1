"""Storefront tasks: load ids, call one service. Safe to run twice."""
from core.tasks import tenant_task
from storefront.services import receipts, upsell


@tenant_task(name="storefront.send_receipt", autoretry_for=(OSError,), retry_backoff=True,
             max_retries=5)
def send_receipt(*, order_id: int) -> bool:
    return receipts.receipt_send(order_id=order_id)


@tenant_task(name="storefront.release_gated_offers")
def release_gated_offers(*, order_id: int) -> None:
    upsell.release_gated_offers(order_id=order_id)
