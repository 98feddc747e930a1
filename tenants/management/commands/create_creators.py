"""Provision many creators from a CSV (slug,display_name,domain,owner_email), with progress."""

import csv
import os
import sys

from django.core.management.base import BaseCommand, CommandError

from tenants.management.progress import Progress
from tenants.services import CreatorSpec, creators_create_bulk

FIELDS = ("slug", "display_name", "domain", "owner_email")


class Command(BaseCommand):
    help = (
        "Create creators in bulk from a CSV with columns slug,display_name,domain,owner_email "
        "('-' reads standard input). Each creator is all-or-nothing; bad rows are reported and "
        "skipped. Owners get no password unless --owner-passwords: they set one by reset link."
    )

    def add_arguments(self, parser):
        parser.add_argument("csv_path")
        parser.add_argument(
            "--jobs",
            type=int,
            default=min(8, 4 * (os.cpu_count() or 1)),
            help="creators made at once, in worker processes (one database connection each); "
            "a clone waits on fsync for each index it builds, so a few more than cores pays",
        )
        parser.add_argument(
            "--owner-passwords",
            action="store_true",
            help="give each owner a random password and print it (slow: one hash each)",
        )

    def handle(self, *args, **opts):
        specs = self._read(opts["csv_path"])
        total = len(specs)
        self.stdout.write(f"Provisioning {total} creators…")
        progress = Progress(self.stdout)

        def on_progress(done: int, total: int, spec: CreatorSpec, error: str | None) -> None:
            if error:
                self.stderr.write(f"  {spec.slug}: {error}")
            progress(done, total)

        result = creators_create_bulk(
            specs,
            owner_password_usable=opts["owner_passwords"],
            jobs=opts["jobs"],
            on_progress=on_progress,
        )
        if opts["owner_passwords"]:
            for item in result.created:
                self.stdout.write(f"  {item.domain}  owner / {item.admin_password}")
        progress.finish(
            self, "Created", len(result.created), len(result.failed), f" of {total} creators"
        )

    def _read(self, path: str) -> list[CreatorSpec]:
        handle = sys.stdin if path == "-" else open(path, newline="", encoding="utf-8")
        with handle:
            reader = csv.DictReader(handle)
            missing = [f for f in FIELDS if f not in (reader.fieldnames or [])]
            if missing:
                raise CommandError(f"the CSV lacks the column(s): {', '.join(missing)}")
            return [CreatorSpec(**{f: (row[f] or "").strip() for f in FIELDS}) for row in reader]
