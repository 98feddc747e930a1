"""Liveness and readiness: is the process up; are the database, broker and gateway reachable."""

from __future__ import annotations

from collections.abc import Callable

from django.db import connection
from django.http import JsonResponse


def healthz(request) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_broker() -> None:
    from config.celery_app import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


# Apps add their own dependencies at start-up (payments adds "gateway"): core imports no app.
CHECKS: dict[str, Callable[[], None]] = {"database": _check_database, "broker": _check_broker}


def readiness_check_register(name: str, check: Callable[[], None]) -> None:
    """Add a dependency to /readyz: `check` raises when it is unreachable."""
    CHECKS[name] = check


def _loop_failures() -> dict:
    """Records the periodic loops failed on (core/loops.py), platform-wide: for alerting, not
    for readiness (a quarantined record does not make the process unready)."""
    from core.loops import loop_failure_counts

    try:
        counts = loop_failure_counts()
    except Exception as exc:  # the database check above already reports the cause
        return {"error": type(exc).__name__}
    return {
        "failing": sum(c["failing"] for c in counts.values()),
        "quarantined": sum(c["quarantined"] for c in counts.values()),
        "by_loop": counts,
    }


def readyz(request) -> JsonResponse:
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # report which dependency failed, never raise
            results[name] = f"error: {type(exc).__name__}: {str(exc)[:200]}"
    ready = all(v == "ok" for v in results.values())
    return JsonResponse(
        {
            "status": "ready" if ready else "unavailable",
            "checks": results,
            "loops": _loop_failures(),
        },
        status=200 if ready else 503,
    )
