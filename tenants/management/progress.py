"""One progress line format for the long tenancy commands (create_creators, spares)."""

from __future__ import annotations

import time


class Progress:
    """Writes `[done/total] pct  rate/s  elapsed  eta` about every 5% and at the end."""

    def __init__(self, stdout):
        self.stdout = stdout
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def __call__(self, done: int, total: int) -> None:
        step = max(1, total // 20)
        if done % step and done != total:
            return
        elapsed = self.elapsed()
        rate = done / elapsed if elapsed else 0.0
        eta = (total - done) / rate if rate else 0.0
        self.stdout.write(
            f"  [{done}/{total}] {100 * done // total}%  {rate:.1f}/s  "
            f"elapsed {elapsed:.1f}s  eta {eta:.1f}s"
        )

    def finish(self, command, verb: str, made: int, failed: int, extra: str = "") -> None:
        """`<verb> N … in Xs (r/s); F failed`: success, or CommandError when any failed."""
        from django.core.management.base import CommandError

        elapsed = self.elapsed()
        summary = (
            f"{verb} {made}{extra} in {elapsed:.1f}s ({made / elapsed if elapsed else 0:.1f}/s);"
            f" {failed} failed"
        )
        if failed:
            raise CommandError(summary)
        command.stdout.write(command.style.SUCCESS(summary))
