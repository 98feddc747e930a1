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
