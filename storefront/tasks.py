"""Storefront tasks: load ids, call one service. Safe to run twice."""

from core.tasks import tenant_task
from storefront.services import buyer_links, delivery, followups, invoices, receipts, upsell


@tenant_task(
    name="storefront.send_receipt", autoretry_for=(OSError,), retry_backoff=True, max_retries=5
)
def send_receipt(*, order_id: int) -> bool:
    return receipts.receipt_send(order_id=order_id)


@tenant_task(
    name="storefront.send_charge_receipt",
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=5,
)
def send_charge_receipt(*, attempt_id: int) -> bool:
    return receipts.charge_receipt_send(attempt_id=attempt_id)


# Documents after a payment or a refund. Each is issued once (unique per payment / refund,
# under the order's lock), so running a task twice changes nothing.
@tenant_task(name="storefront.order_documents", autoretry_for=(OSError,), retry_backoff=True)
def order_documents(*, order_id: int) -> int:
    """Invoices for the order's succeeded payments, and its lines' access rows (license keys)."""
    from storefront.models import Order

    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        return 0
    issued = invoices.order_invoices_issue(order_id=order_id)
    delivery.order_access_ensure(order=order)
    return len(issued)


@tenant_task(name="storefront.credit_note_issue", autoretry_for=(OSError,), retry_backoff=True)
def credit_note_issue(*, refund_ref: str) -> bool:
    return invoices.credit_note_issue(refund_ref=refund_ref) is not None


@tenant_task(
    name="storefront.purchases_link_send",
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=5,
)
def purchases_link_send(*, email: str) -> bool:
    return buyer_links.purchases_link_send(email=email)


# acks_late + reject on a lost worker: a worker killed mid-task must not lose the message
# that releases a queued upsell (gates_release_stale below finds one lost anyway, but only
# after its 10 minutes). Running it twice is harmless: attempt_execute claims CREATED →
# IN_FLIGHT once.
@tenant_task(name="storefront.release_gated_offers", acks_late=True, reject_on_worker_lost=True)
def release_gated_offers(*, order_id: int) -> None:
    upsell.release_gated_offers(order_id=order_id)


@tenant_task(name="storefront.receipts_send_overdue")
def receipts_send_overdue() -> int:
    """Periodic (per tenant via core.tasks.fan_out): receipts whose task was lost, and the
    credit notes of refunds whose task was lost."""
    return receipts.receipts_send_overdue() + invoices.credit_notes_issue_overdue()


@tenant_task(name="storefront.gates_release_stale")
def gates_release_stale(*, older_than_minutes: int = 10) -> int:
    """Periodic (per tenant via core.tasks.fan_out): queued offer charges whose primary settled
    or failed long ago, their release message lost with a broker's data, are released."""
    import datetime as dt

    return upsell.gates_release_stale(older_than=dt.timedelta(minutes=older_than_minutes))


@tenant_task(name="storefront.flag_abandoned_confirmations")
def flag_abandoned_confirmations(*, older_than_minutes: int = 30) -> int:
    """Periodic (per tenant via core.tasks.fan_out): 3-D Secure steps left waiting go to the
    follow-up email."""
    import datetime as dt

    return upsell.offers_flag_abandoned(older_than=dt.timedelta(minutes=older_than_minutes))


# Follow-up emails. Not acks_late: a worker killed mid-send leaves its row claimed (SENDING)
# and the periodic sweep re-claims it after FOLLOWUP_CLAIM_STALE_MINUTES, so nothing rides
# on redelivery. SMTP errors (OSError) retry with capped backoff; the row is handed back first.
@tenant_task(
    name="storefront.followup_send",
    autoretry_for=(OSError,),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=5,
)
def followup_send(*, send_id: int) -> bool:
    return followups.followup_send(send_id=send_id)


@tenant_task(
    name="storefront.followups_send_due",
    autoretry_for=(OSError,),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=5,
)
def followups_send_due() -> int:
    return followups.followups_send_due()


@tenant_task(
    name="storefront.privacy_request_process",
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=5,
)
def privacy_request_process(*, request_id: int) -> str:
    from storefront.privacy.services import privacy_request_process as process

    request = process(request_id=request_id)
    return request.state if request else "missing"


@tenant_task(name="storefront.retention_prune")
def retention_prune() -> dict:
    """Periodic (per tenant via core.tasks.fan_out): stored webhook payloads and delivery logs
    past their retention are deleted (storefront.privacy)."""
    from storefront.privacy.services import retention_prune as prune

    return prune()


@tenant_task(name="storefront.coupon_holds_release")
def coupon_holds_release() -> int:
    """Periodic (per tenant via core.tasks.fan_out): coupon uses held by checkouts left
    unpaid past COUPON_HOLD_MINUTES are given back."""
    from storefront.services import coupon_holds

    return coupon_holds.coupon_holds_release()
