"""Spare schemas (tenants.pool): show the pool, fill it ahead of a burst, or empty it."""

import os

from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import get_public_schema_name, schema_context

from tenants.management.progress import Progress
from tenants.pool import spare_count, spares_drop_all, spares_fill


class Command(BaseCommand):
    help = (
        "Spare schemas cloned ahead of time, so sign-ups rename one instead of cloning. "
        "Without options: how many are waiting. --fill N: make spares until N are waiting. "
        "--drop: drop them all."
    )

    def add_arguments(self, parser):
        parser.add_argument("--fill", type=int, metavar="N", help="make spares until N wait")
        parser.add_argument(
            "--jobs",
            type=int,
            default=min(8, 4 * (os.cpu_count() or 1)),
            help="spares made at once, in worker processes (one database connection each)",
        )
        parser.add_argument("--drop", action="store_true", help="drop every spare")

    def handle(self, *args, **opts):
        with schema_context(get_public_schema_name()):
            if opts["drop"]:
                self.stdout.write(self.style.SUCCESS(f"Dropped {spares_drop_all()} spare(s)."))
                return
            if opts["fill"] is None:
                self.stdout.write(f"{spare_count()} spare schema(s) waiting.")
                return
            if opts["fill"] < 0:
                raise CommandError("--fill takes a number of spares, 0 or more")
            self._fill(opts["fill"], opts["jobs"])

    def _fill(self, target: int, jobs: int) -> None:
        self.stdout.write(f"Filling the pool to {target} spare(s) with {jobs} job(s)…")
        progress = Progress(self.stdout)

        def on_progress(done: int, total: int, error: str | None) -> None:
            if error:
                self.stderr.write(f"  failed: {error}")
            progress(done, total)

        result = spares_fill(target, jobs=jobs, on_progress=on_progress)
        if result.busy:
            raise CommandError("another fill is running (beat's refill?); try again shortly")
        progress.finish(
            self, "Made", result.made, len(result.failed), f" spare(s) ({result.waiting} waiting)"
        )
