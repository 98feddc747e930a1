"""`migrate_tenants`: one pass finds who is behind; only they are migrated; failures surface."""
from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from tenants.models import Creator
from tenants.provisioning import applied_migrations
from tenants.schema_migrations import schemas_behind, tenant_schemas
from tenants.services import creator_create


def _forget(schema: str, app: str, name: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f'DELETE FROM "{schema}".django_migrations WHERE app = %s AND name = %s', [app, name]
        )
        assert cursor.rowcount == 1


def _creating_leaf() -> tuple[str, str]:
    """The latest migration of a creator app that creates a model (fails if run twice)."""
    from django.db.migrations.loader import MigrationLoader
    from django.db.migrations.operations import CreateModel

    loader = MigrationLoader(None, ignore_no_migrations=True)
    for app, name in sorted(loader.graph.leaf_nodes()):
        if app in ("storefront", "offers", "payments", "analytics"):
            migration = loader.graph.nodes[(app, name)]
            if any(isinstance(op, CreateModel) for op in migration.operations):
                return app, name
    pytest.skip("no leaf migration of a creator app creates a model")


def test_a_pass_over_current_schemas_finds_nothing_and_migrates_nothing(db):
    connection.set_schema_to_public()
    out = io.StringIO()
    call_command("migrate_tenants", stdout=out)
    assert "0 behind" in out.getvalue() and "Nothing to migrate." in out.getvalue()


def test_only_the_schema_behind_is_found_migrated_and_reported(db):
    connection.set_schema_to_public()
    # core.0001 is a no-op in a creator schema (shared app), so re-applying it is harmless.
    _forget("t2", "core", "0001_initial")
    assert schemas_behind(tenant_schemas()) == {"t2": 1}

    out = io.StringIO()
    call_command("migrate_tenants", "--jobs", "1", stdout=out)
    assert "1 behind" in out.getvalue()
    assert "applied core.0001_initial to 1 schema(s)" in out.getvalue()
    assert "Migrated 1 of 1 schemas" in out.getvalue()
    assert ("core", "0001_initial") in applied_migrations("t2")
    assert schemas_behind(tenant_schemas()) == {}


def test_a_failing_schema_is_reported_and_the_others_are_migrated_in_parallel(
    django_db_setup, django_db_blocker
):
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        broken = creator_create(
            slug="mig-broken", display_name="Broken", domain="mig-broken.localhost",
            owner_email="b@example.com", password="pw-123456",
        ).creator
        try:
            # Re-running a leaf migration that creates things fails: they are already there.
            leaf = _creating_leaf()
            _forget("mig_broken", *leaf)
            _forget("t2", "core", "0001_initial")
            out, err = io.StringIO(), io.StringIO()
            with pytest.raises(CommandError, match="Migrated 1 of 2 schemas.*1 failed: mig_broken"):
                call_command("migrate_tenants", "--jobs", "2", stdout=out, stderr=err)
            assert "FAILED mig_broken" in err.getvalue() and "already exists" in err.getvalue()
            connection.set_schema_to_public()
            assert ("core", "0001_initial") in applied_migrations("t2")
            assert leaf not in applied_migrations("mig_broken")
            assert set(schemas_behind(tenant_schemas())) == {"mig_broken"}
        finally:
            connection.set_schema_to_public()
            if ("core", "0001_initial") not in applied_migrations("t2"):
                with connection.cursor() as cursor:
                    cursor.execute(
                        "INSERT INTO t2.django_migrations (app, name, applied) "
                        "VALUES ('core', '0001_initial', now())"
                    )
            Creator.objects.get(pk=broken.pk).delete(force_drop=True)
