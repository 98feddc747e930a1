"""Analytics tasks: only for events that do not follow a database change of ours."""

from analytics import services
from core.tasks import tenant_task


@tenant_task(name="analytics.event_record")
def event_record(*, name: str, **fields) -> int:
    return services.event_append(name, **fields).pk


@tenant_task(name="analytics.rollups_refresh")
def rollups_refresh() -> dict:
    """Periodic, per tenant: fold queued changes into the dashboard's read models. Safe to run
    twice or concurrently (the refresh holds a per-tenant lock and empties a queue)."""
    from analytics.rollups import rollups_refresh as refresh

    return refresh()


@tenant_task(name="analytics.notice_dispatch", acks_late=True, reject_on_worker_lost=True)
def notice_dispatch(*, name: str, payload: dict, key: str) -> None:
    """A payout account or transfer change, queued in the transaction that recorded it, handed
    to the listeners (partners' webhooks) once it has committed."""
    services.notice_deliver(name=name, payload=payload, key=key)
