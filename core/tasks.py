"""Task plumbing: a tenant-only task base, the per-tenant fan-out and the outbox."""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
import logging
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, get_tenant_model, schema_context
from tenant_schemas_celery.task import TenantTask

from config.celery_app import app
from core.models import OutboxMessage
from core.returning import update_returning

logger = logging.getLogger(__name__)


class TenantRequired(RuntimeError):
    """A tenant task arrived without a tenant: it must not touch tenant tables."""


class TenantOnlyTask(TenantTask):
    abstract = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if connection.schema_name == get_public_schema_name():
            raise TenantRequired(f"{self.name} needs a tenant schema and got none")
        return super().__call__(*args, **kwargs)


def tenant_task(*args: Any, **options: Any):
    """Declare a task that runs inside the schema it was enqueued from, and only there."""
    options.setdefault("base", TenantOnlyTask)
    return app.task(*args, **options)


def platform_task(*args: Any, **options: Any):
    """Declare a platform-wide periodic task: beat's fan_out runs it once, in public.

    Not per creator. The flag lives on the task, so core needs to import no app to know it.
    """
    options["platform_wide"] = True
    return app.task(*args, **options)


def _registered(task_name: str):
    if task_name not in app.tasks:  # outside a worker the apps' tasks may not be imported yet
        app.loader.import_default_modules()
    return app.tasks.get(task_name)


def enqueue(task_name: str, *, delay: dt.timedelta | None = None, **kwargs: Any) -> OutboxMessage:
    """Record a task for the current tenant; it goes to the broker after the transaction commits.

    Call inside the transaction that made the change the task follows. If the broker is down
    at commit, the row stays and `drain_outbox` sends it later.
    """
    now = timezone.now()
    message = OutboxMessage.objects.create(
        schema_name=connection.schema_name,
        task_name=task_name,
        kwargs=kwargs,
        available_at=now + (delay or dt.timedelta(0)),
    )
    if not delay:
        _dispatch_after_commit([message.pk])
    return message


def enqueue_many(tasks: list[tuple[str, dict[str, Any]]]) -> list[OutboxMessage]:
    """`enqueue` for several tasks at once: one INSERT for all of them (same guarantees)."""
    now = timezone.now()
    messages = OutboxMessage.objects.bulk_create(
        [
            OutboxMessage(
                schema_name=connection.schema_name, task_name=name, kwargs=kw, available_at=now
            )
            for name, kw in tasks
        ]
    )
    _dispatch_after_commit([m.pk for m in messages])
    return messages


def _dispatch_after_commit(ids: list[int]) -> None:
    """After commit, the messages of the transaction go to the broker together: the first
    callback to run takes every id queued so far on this connection (one claim statement for
    all), the later ones find nothing left. Ids of a rolled-back savepoint match no row."""
    pending = connection.__dict__.setdefault("_outbox_pending", [])
    pending.extend(ids)

    def send() -> None:
        batch = list(pending)
        pending.clear()
        if batch:
            _dispatch_batch(batch)

    transaction.on_commit(send, robust=True)


LOOP_OUTBOX = "core.outbox"


class PoisonMessage(ValueError):
    """An outbox message no worker could run (no such task, arguments that are not keyword
    arguments). Sending it would only lose it in the worker; it is kept, counted and, after
    LOOP_QUARANTINE_AFTER drains, quarantined for the creator to see."""


_task_names: set[str] = set()


def _registered_task_names() -> set[str]:
    """Every task the worker knows: import each app's tasks module, as its autodiscovery does
    (not the loader's import_default_modules, which also runs Django's system checks)."""
    from django.apps import apps

    for config in apps.get_app_configs():
        if importlib.util.find_spec(f"{config.name}.tasks") is not None:
            importlib.import_module(f"{config.name}.tasks")
    return set(app.tasks.keys())


def _message_check(message: OutboxMessage) -> None:
    if not _task_names:
        _task_names.update(_registered_task_names())
    if not isinstance(message.kwargs, dict):
        raise PoisonMessage(f"the arguments of {message.task_name!r} are not keyword arguments")
    if message.task_name not in _task_names:
        raise PoisonMessage(f"there is no background task named {message.task_name!r}")


def _dispatch(message_id: int, *, strict: bool = False) -> bool:
    """Send one outbox message to the broker, at most once per claim (SKIP LOCKED).

    A broker error keeps the row for the drainer (False). A poison message is kept too, with
    its reason; with `strict` (the drainer's loop) PoisonMessage is raised so the loop counts
    it against the record."""
    poison: PoisonMessage | None = None
    with transaction.atomic():
        message = (
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(pk=message_id, dispatched_at__isnull=True)
            .first()
        )
        if message is None:
            return False
        message.send_attempts += 1
        try:
            _send(message)
        except PoisonMessage as exc:
            poison = exc
            message.last_error = str(exc)[:1000]
            message.save(update_fields=["send_attempts", "last_error"])
        except Exception as exc:  # broker down: keep the row, the drainer retries
            logger.warning("outbox: could not send %s: %s", message, exc)
            message.last_error = str(exc)[:1000]
            message.save(update_fields=["send_attempts", "last_error"])
            return False
        else:
            message.dispatched_at = timezone.now()
            message.save(update_fields=["send_attempts", "dispatched_at", "last_error"])
            return True
    if strict:
        raise poison
    logger.error("outbox: %s is not sendable: %s", message, poison)
    return False


def _send(message: OutboxMessage, producer=None) -> None:
    """Hand a message to the broker, its store named in the headers; PoisonMessage if it can
    never be sent (`_message_check`), the broker's error if it is down."""
    _message_check(message)
    options = {"producer": producer} if producer is not None else {}
    app.send_task(
        message.task_name,
        kwargs=message.kwargs,
        headers={"_schema_name": message.schema_name},
        retry=False,
        **options,
    )


def _send_together(messages: list[OutboxMessage]) -> list[tuple[OutboxMessage, Exception]]:
    """Hand one commit's messages to the broker in one round trip (kombu's `Producer.batch`:
    one Redis pipeline, one client), and return those not sent, each with its reason.

    A message that fails on its own (poison: `_send` checks it before anything is sent; or
    arguments that would not encode) does not hold back the others. If the broker is down or
    the pipeline fails, every other message of the batch counts as unsent and the drainer
    sends it again. Redis may have taken some of them before it failed (the pipeline is not a
    transaction), so one can then arrive twice, as one can when the broker's answer to a
    single send is lost: delivery is at least once, and a task that runs twice changes
    nothing the second time (tests/delivery/test_outbox_twice.py)."""
    unsent: list[tuple[OutboxMessage, Exception]] = []
    alone: set[int] = set()
    try:
        with app.producer_or_acquire() as producer, producer.batch():
            for message in messages:
                try:
                    _send(message, producer)
                except Exception as exc:  # this message only; the batch goes on
                    alone.add(message.pk)
                    unsent.append((message, exc))
    except Exception as exc:  # broker down, or the pipeline failed: all of it is unsent
        unsent.extend((message, exc) for message in messages if message.pk not in alone)
    return unsent


def _dispatch_batch(ids: list[int]) -> None:
    """Claim and send freshly committed messages with one statement: an UPDATE of the rows not
    locked by a drainer (SKIP LOCKED) that marks them sent, RETURNING them, inside a
    transaction that holds their locks while the broker takes them (all in one round trip,
    `_send_together`). A message the broker refuses (or a poison one) is put back as unsent
    with its reason, as `_dispatch` would."""
    with transaction.atomic():
        claimed = update_returning(
            OutboxMessage,
            assignments='"dispatched_at" = %s, "send_attempts" = "send_attempts" + 1',
            where=f'"id" IN (SELECT "id" FROM "{OutboxMessage._meta.db_table}" WHERE "id" = '
            'ANY(%s) AND "dispatched_at" IS NULL FOR UPDATE SKIP LOCKED)',
            params=[timezone.now(), list(ids)],
        )
        for message, exc in _send_together(claimed) if claimed else ():
            # poison or broker down: unsent, the drainer retries
            log = logger.error if isinstance(exc, PoisonMessage) else logger.warning
            reason = str(exc) if exc.__cause__ is None else f"{exc}: {exc.__cause__}"
            log("outbox: could not send %s: %s", message, reason)
            OutboxMessage.objects.filter(pk=message.pk).update(
                dispatched_at=None, last_error=reason[:1000]
            )


@app.task(name="core.tasks.drain_outbox")
def drain_outbox(limit: int = 500) -> int:
    """Send every due, undispatched message. Safe to run concurrently (rows are claimed).

    A poison message is recorded against its store and skipped (core/loops.py); after
    LOOP_QUARANTINE_AFTER drains it is quarantined and no longer tried."""
    from core.loops import each_record, quarantined_pks

    with schema_context(get_public_schema_name()):
        due = list(
            OutboxMessage.objects.filter(
                dispatched_at__isnull=True, available_at__lte=timezone.now()
            )
            .exclude(pk__in=quarantined_pks(LOOP_OUTBOX, schema_name="*"))
            .order_by("available_at")
            .values_list("pk", "schema_name", "task_name")[:limit]
        )
        run = each_record(
            LOOP_OUTBOX,
            due,
            lambda row: _dispatch(row[0], strict=True),
            key=lambda row: row[0],
            schema=lambda row: row[1],
            label=lambda row: f"background task {row[2]}"[:200],
        )
        return sum(1 for sent in run.results if sent)


@app.task(name="core.tasks.fan_out")
def fan_out(task_name: str, **kwargs: Any) -> int:
    """Periodic entry point: send `task_name` once per creator, inside that creator's schema."""
    if task_name == "core.tasks.drain_outbox":
        return drain_outbox()
    task = _registered(task_name)
    if getattr(task, "platform_wide", False):  # once, in public (e.g. tenants.spares_refill)
        return task()
    count = 0
    with schema_context(get_public_schema_name()):
        schemas = list(
            get_tenant_model()
            .objects.exclude(schema_name=get_public_schema_name())
            .values_list("schema_name", flat=True)
        )
    for schema in schemas:
        app.send_task(task_name, kwargs=kwargs, headers={"_schema_name": schema})
        count += 1
    return count
