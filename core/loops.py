"""Loops over records: one failing record never stops its loop.

Every periodic loop over rows (the webhook backlog, the outbox, follow-up sends, abandoned
confirmations, guardrails, partner webhook fan-out…) runs each record through `each_record`:

- the record's work runs on its own; an exception is caught, the record's failure is written
  to a `LoopFailure` row (reason, tries) and logged with `logger.error` under the stable
  message "loop record failed" (alerting keys on it), and the loop moves on;
- after LOOP_QUARANTINE_AFTER failed runs (default 5) the record is quarantined: the loop
  skips it from then on, "loop record quarantined" is logged once, and the creator sees it in
  the store admin under "Needs attention" (audit/admin.py, LoopFailureAdmin); /readyz counts them;
- a success after failures clears the row (the count is of runs *in a row*);
- exceptions listed in `stop_on` are not the record's fault (gateway down, broker down, SMTP
  server unreachable): they end the loop at once and count against no record.

The work runs outside any transaction of ours (gateway calls must not sit in one); only when
the caller is already inside a transaction is it wrapped in a savepoint, so a database error in
one record does not poison the caller's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import BigIntegerField, Count, F, Q, QuerySet
from django.db.models.functions import Cast
from django.utils import timezone

from core.models import LoopFailure

logger = logging.getLogger(__name__)

R = TypeVar("R")


def quarantine_after() -> int:
    return max(1, int(getattr(settings, "LOOP_QUARANTINE_AFTER", 5)))


def _quarantined(loop: str, schema_name: str | None) -> QuerySet[LoopFailure]:
    rows = LoopFailure.objects.filter(loop=loop, quarantined_at__isnull=False)
    if schema_name != "*":
        rows = rows.filter(schema_name=schema_name or connection.schema_name)
    return rows


def quarantined_ids(loop: str, *, schema_name: str | None = None) -> list[str]:
    """Record ids `loop` must skip in this schema (or in every schema with schema_name="*")."""
    return list(_quarantined(loop, schema_name).values_list("record_id", flat=True))


def quarantined_pks(loop: str, *, schema_name: str | None = None) -> QuerySet:
    """The same as a subquery of integer ids, for `.exclude(pk__in=…)` in a loop's own query
    (so quarantined records never use up its batch limit, however many there are)."""
    return (
        _quarantined(loop, schema_name)
        .filter(record_id__regex=r"^[0-9]{1,18}$")
        .annotate(record_pk=Cast("record_id", BigIntegerField()))
        .values("record_pk")
    )


def _text(value: str, limit: int) -> str:
    return value.replace("\x00", "\\x00")[:limit]  # PostgreSQL text cannot hold NUL


def failure_record(
    *,
    loop: str,
    record_id: str,
    error: BaseException | str,
    label: str = "",
    schema_name: str | None = None,
) -> LoopFailure:
    """Count one failed run of a record; quarantine it on the LOOP_QUARANTINE_AFTER-th."""
    schema = schema_name or connection.schema_name
    reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    reason, label = _text(reason, 1000), _text(label, 200)
    now = timezone.now()
    key = {"schema_name": schema, "loop": loop, "record_id": _text(str(record_id), 100)}
    with transaction.atomic():
        updated = LoopFailure.objects.filter(**key).update(
            tries=F("tries") + 1,
            last_error=reason,
            last_failed_at=now,
            **({"label": label} if label else {}),
        )
        if not updated:
            try:
                with transaction.atomic():
                    LoopFailure.objects.create(
                        **key,
                        label=label,
                        tries=1,
                        last_error=reason,
                        first_failed_at=now,
                        last_failed_at=now,
                    )
            except IntegrityError:  # a concurrent run created it first
                LoopFailure.objects.filter(**key).update(
                    tries=F("tries") + 1, last_error=reason, last_failed_at=now
                )
        row = LoopFailure.objects.get(**key)
        limit = quarantine_after()
        logger.error(
            "loop record failed: loop=%s schema=%s record=%s try=%d/%d error=%s",
            loop,
            schema,
            key["record_id"],
            row.tries,
            limit,
            reason,
        )
        if row.quarantined_at is None and row.tries >= limit:
            if LoopFailure.objects.filter(pk=row.pk, quarantined_at__isnull=True).update(
                quarantined_at=now
            ):
                row.quarantined_at = now
                logger.error(
                    "loop record quarantined: loop=%s schema=%s record=%s tries=%d error=%s",
                    loop,
                    schema,
                    key["record_id"],
                    row.tries,
                    reason,
                )
    return row


def failure_clear(*, loop: str, record_id: str, schema_name: str | None = None) -> None:
    """The record went through: forget its earlier failures (not a quarantine: that stays)."""
    LoopFailure.objects.filter(
        schema_name=schema_name or connection.schema_name,
        loop=loop,
        record_id=str(record_id),
        quarantined_at__isnull=True,
    ).delete()


def failures_retry(*, ids: list[int], schema_name: str | None = None) -> int:
    """Forget these failures of this store (the creator fixed the cause; "*": of any store,
    for the platform's admin): quarantined records go back into their loops with a fresh
    count. Returns how many were cleared."""
    rows = LoopFailure.objects.filter(pk__in=ids)
    if schema_name != "*":
        rows = rows.filter(schema_name=schema_name or connection.schema_name)
    deleted, _ = rows.delete()
    return deleted


def _savepoint_end(savepoint: str | None, error: BaseException | None) -> None:
    """Keep what the record's work wrote (as autocommit would outside a transaction), unless a
    database error aborted the transaction: then roll back to before the record."""
    if not savepoint:
        return
    cause: BaseException | None = error
    aborted = connection.needs_rollback
    while cause is not None and not aborted:
        aborted = isinstance(cause, DatabaseError)
        cause = cause.__cause__ or cause.__context__
    if aborted:
        transaction.set_rollback(False)  # else Django refuses the ROLLBACK TO SAVEPOINT itself
        transaction.savepoint_rollback(savepoint)
    else:
        transaction.savepoint_commit(savepoint)


@dataclass
class LoopRun:
    loop: str
    results: list[Any] = field(default_factory=list)  # what `work` returned, per success
    failed: list[str] = field(default_factory=list)  # "record: reason", per failure
    quarantined: list[str] = field(default_factory=list)  # ids quarantined by this run
    skipped: int = 0  # quarantined earlier, not run


def each_record(
    loop: str,
    records: Iterable[R],
    work: Callable[[R], Any],
    *,
    key: Callable[[R], Any] = lambda record: record,
    label: Callable[[R], str] | None = None,
    schema: Callable[[R], str] | None = None,
    stop_on: tuple[type[BaseException], ...] = (),
) -> LoopRun:
    """Run `work(record)` for each record, moving past (and recording) any that fail.

    `key` gives the record's id (default: the record itself, for loops over pks); `label` a
    short description for the creator, computed only on failure; `schema` whose record it is
    (default: the current schema; the outbox's messages name theirs).
    """
    run = LoopRun(loop)
    here = connection.schema_name
    # One query for the loop's failing and quarantined records (few: only failures have rows).
    rows = LoopFailure.objects.filter(loop=loop)
    if schema is None:
        rows = rows.filter(schema_name=here)
    known = {
        (owner, record_id): quarantined_at is not None
        for owner, record_id, quarantined_at in rows.values_list(
            "schema_name", "record_id", "quarantined_at"
        )
    }
    for record in records:
        record_id = str(key(record))
        owner = schema(record) if schema else here
        seen = (owner, record_id) in known
        quarantined = known.get((owner, record_id), False)
        if quarantined:
            run.skipped += 1
            continue
        # Inside a caller's transaction (tests, mostly) a savepoint keeps a database error in
        # one record from breaking it; a bare savepoint, not atomic(): atomic blocks are what
        # the gateway's "no open transaction" guard looks for. Outside one: None, a no-op.
        savepoint = transaction.savepoint()
        try:
            result = work(record)
        except stop_on as exc:
            _savepoint_end(savepoint, exc)
            raise
        except Exception as exc:  # the record's own failure: record, alert, move on
            _savepoint_end(savepoint, exc)
            text = ""
            if label is not None:
                try:
                    text = label(record)
                except Exception:  # a description is not worth losing the failure over
                    text = ""
            row = failure_record(
                loop=loop, record_id=record_id, error=exc, label=text, schema_name=owner
            )
            run.failed.append(f"{record_id}: {row.last_error}")
            if row.quarantined_at is not None:
                run.quarantined.append(record_id)
            continue
        _savepoint_end(savepoint, None)
        run.results.append(result)
        if seen:
            failure_clear(loop=loop, record_id=record_id, schema_name=owner)
    return run


def each_pk_done(
    loop: str,
    rows: QuerySet,
    work: Callable[[int], Any],
    *,
    limit: int | None,
    what: str,
    stop_on: tuple[type[BaseException], ...] = (),
) -> int:
    """A sweep: `work(pk)` for the first `limit` pks of `rows` in its order, the loop's
    quarantined records left out (they never use up the limit), through `each_record`; how
    many returned something true (a receipt sent, a row made). `what` names a record in the
    store's "Needs attention" list. A `stop_on` error (the mail server down: nobody's record)
    ends the run quietly: logged, counted against none, the rest wait for the next run."""
    pks = list(rows.exclude(pk__in=quarantined_pks(loop)).values_list("pk", flat=True)[:limit])
    done = 0

    def counted(pk: int) -> Any:
        nonlocal done
        result = work(pk)
        done += bool(result)
        return result

    try:
        each_record(loop, pks, counted, label=lambda pk: f"{what} {pk}", stop_on=stop_on)
    except stop_on as exc:
        here = connection.schema_name
        logger.warning("loop stopped: loop=%s schema=%s error=%s", loop, here, exc)
    return done


def loop_failure_counts() -> dict[str, dict[str, int]]:
    """Platform-wide, per loop: records failing (not yet quarantined) and quarantined."""
    counts: dict[str, dict[str, int]] = {}
    rows = LoopFailure.objects.values("loop").annotate(
        failing=Count("pk", filter=Q(quarantined_at__isnull=True)),
        quarantined=Count("pk", filter=Q(quarantined_at__isnull=False)),
    )
    for row in rows:
        counts[row["loop"]] = {"failing": row["failing"], "quarantined": row["quarantined"]}
    return counts
