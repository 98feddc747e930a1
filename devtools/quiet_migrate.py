"""A `migrate` that prints nothing: the suite's per-schema migrations drown its own output.

django-tenants runs this class for every schema it migrates (TENANT_BASE_MIGRATE_COMMAND in
config/settings/test.py); errors still raise as usual.
"""

from django.core.management.commands.migrate import Command as MigrateCommand


class Command(MigrateCommand):
    def execute(self, *args, **options):
        options["verbosity"] = 0
        return super().execute(*args, **options)
