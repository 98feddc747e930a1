"""Tenancy tests need every schema current, also after new migrations land on a --reuse-db run."""

import io

import pytest


@pytest.fixture(scope="session", autouse=True)
def _schemas_current(django_db_setup, django_db_blocker):
    from django.core.management import call_command

    with django_db_blocker.unblock():
        call_command("migrate_tenants", "--jobs", "1", stdout=io.StringIO())
