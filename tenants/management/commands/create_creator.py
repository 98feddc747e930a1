"""Provision a creator: schema, domain and owner user; prints the admin login."""

import time

from django.core.management.base import BaseCommand, CommandError

from tenants.services import ProvisioningError, creator_create


class Command(BaseCommand):
    help = "Create a creator (tenant) with its schema, domain and an owner admin user."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("display_name")
        parser.add_argument("domain")
        parser.add_argument("owner_email")
        parser.add_argument("--password", default=None, help="owner password (random if omitted)")

    def handle(self, *args, **opts):
        self.stdout.write(f"Provisioning {opts['slug']}…")
        started = time.perf_counter()
        try:
            result = creator_create(
                slug=opts["slug"],
                display_name=opts["display_name"],
                domain=opts["domain"],
                owner_email=opts["owner_email"],
                password=opts["password"],
            )
        except ProvisioningError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Created creator {result.creator.slug} (schema {result.creator.schema_name}, "
                f"{time.perf_counter() - started:.2f}s)"
            )
        )
        self.stdout.write(f"  storefront: http://{result.domain}/")
        self.stdout.write(f"  admin:      http://{result.domain}/admin/")
        self.stdout.write(f"  login:      {result.admin_username} / {result.admin_password}")
