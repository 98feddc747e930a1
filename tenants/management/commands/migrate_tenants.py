"""Deploy-time migrations: public first, then only the creator schemas that are behind."""

import os
import time

from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import get_public_schema_name

from tenants.pool import claims_paused
from tenants.schema_migrations import (
    SchemaResult,
    schema_migrate,
    schemas_behind,
    schemas_migrate,
    tenant_schemas,
)


class Command(BaseCommand):
    help = (
        "Migrate the public schema, then find (in one pass) the template and creator schemas "
        "with unapplied migrations and migrate only those, in parallel. Exits non-zero if any "
        "schema failed; the others are completed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--jobs",
            type=int,
            default=min(4, os.cpu_count() or 1),
            help="schemas migrated at once; each holds one database connection",
        )
        parser.add_argument(
            "--max-connections",
            type=int,
            default=None,
            help="connection budget for this command (jobs are capped to budget - 1: the other one "
            "holds the lock that pauses spare-schema claims while the jobs run)",
        )
        parser.add_argument("--skip-public", action="store_true")
        parser.add_argument("--check", action="store_true", help="only report who is behind")

    def handle(self, *args, **opts):
        started = time.perf_counter()
        jobs = max(1, opts["jobs"])
        if opts["max_connections"]:
            jobs = max(1, min(jobs, opts["max_connections"] - 1))
        verbosity = opts["verbosity"]
        public = get_public_schema_name()

        if not opts["skip_public"] and not opts["check"] and schemas_behind([public]):
            self.stdout.write(f"Migrating {public}…")
            applied = schema_migrate(public)
            self.stdout.write(f"  {public}: applied {len(applied)} ({', '.join(applied)})")

        if opts["check"]:  # read-only: sign-ups may go on taking spares
            self._tenants(started, jobs, verbosity, check=True)
            return
        with claims_paused():  # no spare renamed away between listing and migrating it
            self._tenants(started, jobs, verbosity, check=False)

    def _tenants(self, started: float, jobs: int, verbosity: int, check: bool) -> None:
        schemas = tenant_schemas()
        behind = schemas_behind(schemas)
        checked_in = time.perf_counter() - started
        self.stdout.write(
            f"Checked {len(schemas)} schemas in {checked_in:.2f}s: {len(behind)} behind"
        )
        if check or not behind:
            if check:
                for schema, missing in sorted(behind.items()):
                    self.stdout.write(f"  {schema}: {missing} unapplied")
            message = "Nothing to migrate." if not behind else "Check only."
            self.stdout.write(self.style.SUCCESS(message))
            return

        todo = [s for s in schemas if s in behind]
        step = max(1, len(todo) // 20)
        migrate_started = time.perf_counter()
        self.stdout.write(f"Migrating {len(todo)} schemas with {jobs} job(s)…")

        def on_result(result: SchemaResult, done: int, total: int) -> None:
            if result.error:
                self.stderr.write(self.style.ERROR(f"  FAILED {result.schema}: {result.error}"))
            elif verbosity >= 2:
                self.stdout.write(
                    f"  {result.schema}: {len(result.applied)} applied ({result.seconds:.2f}s)"
                )
            if done % step == 0 or done == total:
                elapsed = time.perf_counter() - migrate_started
                self.stdout.write(f"  [{done}/{total}] {100 * done // total}%  {elapsed:.1f}s")

        results = schemas_migrate(todo, jobs=jobs, on_result=on_result)
        failed = [r for r in results if r.error]
        applied: dict[str, int] = {}
        for r in results:
            for name in r.applied:
                applied[name] = applied.get(name, 0) + 1
        elapsed = time.perf_counter() - started
        for name, count in sorted(applied.items()):
            self.stdout.write(f"  applied {name} to {count} schema(s)")
        summary = (
            f"Migrated {len(results) - len(failed)} of {len(todo)} schemas in {elapsed:.1f}s; "
            f"{len(failed)} failed"
        )
        if failed:
            for r in failed:
                self.stderr.write(f"  {r.schema}: {r.error}")
            raise CommandError(summary + ": " + ", ".join(r.schema for r in failed))
        self.stdout.write(self.style.SUCCESS(summary))
