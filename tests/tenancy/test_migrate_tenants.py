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
    # A leaf of its own app that another app's migration depends on (offers.0002 ← storefront)
    # cannot be unapplied alone: migrating back would take the other app's migrations along.
    depended_on = {
        parent.key
        for node in loader.graph.node_map.values()
        for parent in node.parents
        if parent.key[0] != node.key[0]
    }
    for app, name in sorted(loader.graph.leaf_nodes()):
        if app in ("storefront", "offers", "payments", "analytics"):
            migration = loader.graph.nodes[(app, name)]
            if (app, name) in depended_on:
                continue
            if any(isinstance(op, CreateModel) for op in migration.operations):
                return app, name
    pytest.skip("no leaf migration of a creator app creates a model")


def _core_leaf() -> str:
    """core's latest migration: a no-op in a creator schema (shared app), so re-applying it is
    harmless, and nothing in the schema depends on it (an earlier one would be inconsistent)."""
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(None, ignore_no_migrations=True)
    (name,) = [n for app, n in loader.graph.leaf_nodes() if app == "core"]
    return name


def test_a_pass_over_current_schemas_finds_nothing_and_migrates_nothing(db):
    connection.set_schema_to_public()
    out = io.StringIO()
    call_command("migrate_tenants", stdout=out)
    assert "0 behind" in out.getvalue() and "Nothing to migrate." in out.getvalue()


def test_only_the_schema_behind_is_found_migrated_and_reported(db):
    connection.set_schema_to_public()
    core_leaf = _core_leaf()
    _forget("t2", "core", core_leaf)
    assert schemas_behind(tenant_schemas()) == {"t2": 1}

    out = io.StringIO()
    call_command("migrate_tenants", "--jobs", "1", stdout=out)
    assert "1 behind" in out.getvalue()
    assert f"applied core.{core_leaf} to 1 schema(s)" in out.getvalue()
    assert "Migrated 1 of 1 schemas" in out.getvalue()
    assert ("core", core_leaf) in applied_migrations("t2")
    assert schemas_behind(tenant_schemas()) == {}


def test_a_failing_schema_is_reported_and_the_others_are_migrated_in_parallel(
    django_db_setup, django_db_blocker
):
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        broken = creator_create(
            slug="mig-broken",
            display_name="Broken",
            domain="mig-broken.localhost",
            owner_email="b@example.com",
            password="pw-123456",
        ).creator
        try:
            # Re-running a leaf migration that creates things fails: they are already there.
            leaf = _creating_leaf()
            _forget("mig_broken", *leaf)
            core_leaf = _core_leaf()
            _forget("t2", "core", core_leaf)
            out, err = io.StringIO(), io.StringIO()
            with pytest.raises(CommandError, match="Migrated 1 of 2 schemas.*1 failed: mig_broken"):
                call_command("migrate_tenants", "--jobs", "2", stdout=out, stderr=err)
            assert "FAILED mig_broken" in err.getvalue() and "already exists" in err.getvalue()
            connection.set_schema_to_public()
            assert ("core", core_leaf) in applied_migrations("t2")
            assert leaf not in applied_migrations("mig_broken")
            assert set(schemas_behind(tenant_schemas())) == {"mig_broken"}
        finally:
            connection.set_schema_to_public()
            if ("core", _core_leaf()) not in applied_migrations("t2"):
                with connection.cursor() as cursor:
                    cursor.execute(
                        "INSERT INTO t2.django_migrations (app, name, applied) "
                        "VALUES ('core', %s, now())",
                        [_core_leaf()],
                    )
            Creator.objects.get(pk=broken.pk).delete(force_drop=True)


def _unapply(schema: str, leaf: tuple[str, str]) -> None:
    """Migrate `schema` back to just before `leaf`: as if `leaf` were a new migration there."""
    from django.core.management.commands.migrate import Command as MigrateCommand
    from django.db.migrations.loader import MigrationLoader

    app, _ = leaf
    loader = MigrationLoader(None, ignore_no_migrations=True)
    parents = [key for key in loader.graph.node_map[leaf].parents if key.key[0] == app]
    target = parents[0].key[1] if parents else "zero"
    connection.set_schema(schema)
    try:
        call_command(
            MigrateCommand(),
            app,
            target,
            interactive=False,
            verbosity=0,
            skip_checks=True,
            stdout=io.StringIO(),
        )
    finally:
        connection.set_schema_to_public()
    assert leaf not in applied_migrations(schema)


@pytest.fixture
def schemas_without_the_leaf(django_db_setup, django_db_blocker):
    """Three new creators whose schemas lack the latest model-creating migration."""
    from tenants.services import CreatorSpec, creators_create_bulk

    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        made = creators_create_bulk(
            [
                CreatorSpec(f"new-mig-{i}", f"New {i}", f"new-mig-{i}.localhost", "n@example.com")
                for i in range(3)
            ]
        ).created
        try:
            leaf = _creating_leaf()
            schemas = sorted(item.creator.schema_name for item in made)
            assert len(schemas) == 3
            for schema in schemas:
                _unapply(schema, leaf)
            yield leaf, schemas
        finally:
            connection.set_schema_to_public()
            for creator in Creator.objects.filter(slug__startswith="new-mig-"):
                creator.delete(force_drop=True)


def test_a_new_migration_is_applied_to_every_schema_behind_and_reported(
    schemas_without_the_leaf,
):
    from tests.tenancy.test_provisioning import catalog

    leaf, schemas = schemas_without_the_leaf
    app, name = leaf
    # One schema also lost the app's content types: post_migrate must bring them back.
    with connection.cursor() as cursor:
        cursor.execute(
            f'DELETE FROM "{schemas[0]}".auth_permission WHERE content_type_id IN '
            f'(SELECT id FROM "{schemas[0]}".django_content_type WHERE app_label = %s)',
            [app],
        )
        cursor.execute(
            f'DELETE FROM "{schemas[0]}".django_content_type WHERE app_label = %s', [app]
        )
        assert cursor.rowcount > 0
    assert schemas_behind(tenant_schemas()) == {schema: 1 for schema in schemas}

    out = io.StringIO()
    call_command("migrate_tenants", "--jobs", "2", stdout=out)
    assert "3 behind" in out.getvalue()
    assert f"applied {app}.{name} to 3 schema(s)" in out.getvalue()
    assert "Migrated 3 of 3 schemas" in out.getvalue() and "0 failed" in out.getvalue()
    connection.set_schema_to_public()
    assert schemas_behind(tenant_schemas()) == {}
    # Each schema is again what the template is: tables, constraints, indexes, triggers,
    # migrations recorded, content types and permissions.
    template = catalog("_tenant_template")
    for schema in schemas:
        assert catalog(schema) == template, schema


def test_a_migration_pass_renders_the_project_state_once_for_all_schemas(
    schemas_without_the_leaf, monkeypatch
):
    from django.db.migrations.executor import MigrationExecutor

    from tenants import schema_migrations

    leaf, schemas = schemas_without_the_leaf
    renders = []
    original = MigrationExecutor._create_project_state

    def counted(self, *args, **kwargs):
        renders.append(args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MigrationExecutor, "_create_project_state", counted)
    monkeypatch.setattr(schema_migrations, "_migrator", None)
    results = schema_migrations.schemas_migrate(schemas, jobs=1, on_result=lambda *a: None)
    connection.set_schema_to_public()
    assert [(r.schema, r.applied, r.error) for r in results] == [
        (schema, [f"{leaf[0]}.{leaf[1]}"], None) for schema in schemas
    ]
    assert len(renders) == 1
    assert schemas_behind(schemas) == {}
