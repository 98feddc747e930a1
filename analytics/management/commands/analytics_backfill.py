"""Rebuild the dashboard's read models from the source tables, one creator at a time."""

from django.core.management.base import BaseCommand
from django.db import connection
from django_tenants.utils import get_public_schema_name, schema_context

from analytics.rollups import rollups_rebuild


class Command(BaseCommand):
    help = (
        "Recompute analytics read models (order, offer-line and buyer summaries, daily and "
        "first-visit counters) for one schema (--schema), the current one, or every creator."
    )

    def add_arguments(self, parser):
        parser.add_argument("--schema", help="a creator's schema name (default: all creators)")

    def handle(self, *args, schema=None, **opts):
        public = get_public_schema_name()
        if schema:
            schemas = [schema]
        elif connection.schema_name != public:
            schemas = [connection.schema_name]
        else:
            from tenants.models import Creator

            schemas = list(
                Creator.objects.exclude(schema_name=public).values_list("schema_name", flat=True)
            )
        for name in schemas:
            with schema_context(name):

                def say(message: str, name: str = name) -> None:
                    self.stdout.write(f"[{name}] {message}")
                    self.stdout.flush()

                done = rollups_rebuild(progress=say)
                say(f"done: {done['events']:,} events, {done['orders']:,} orders")
