"""Analytics tasks: only for events that do not follow a database change of ours."""
from analytics import services
from core.tasks import tenant_task


@tenant_task(name="analytics.event_record")
def event_record(*, name: str, **fields) -> int:
    return services.event_append(name, **fields).pk
