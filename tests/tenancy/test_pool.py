"""Spare schemas: a sign-up renames one made ahead of time, and is otherwise unchanged.

What could go wrong, and is tried here: a renamed spare that differs from a migrated schema;
two sign-ups taking the same spare; a failed sign-up losing its spare or leaving it renamed; a
spare behind the migrations being handed out; two fillers overfilling the pool.
"""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, connections, transaction
from django_tenants.utils import schema_exists, tenant_context

from tenants import pool
from tenants.models import Creator, Domain, SpareSchema
from tenants.pool import spare_claim, spare_count, spare_make, spare_names, spares_drop_all
from tenants.provisioning import TEMPLATE_SCHEMA, ProvisioningFailed, applied_migrations
from tenants.provisioning import expected_migrations as expected
from tenants.schema_migrations import schemas_behind, tenant_schemas
from tenants.services import creator_create
from tests.tenancy.test_provisioning import catalog


def _differences(a: dict, b: dict) -> dict:
    return {
        part: (sorted(set(a[part]) - set(b[part])), sorted(set(b[part]) - set(a[part])))
        for part in a
        if a[part] != b[part]
    }


def test_a_claimed_spare_is_the_migrated_template_under_the_creators_name(db):
    connection.set_schema_to_public()
    spare = spare_make()
    assert spare.startswith("_spare_") and spare_names() == [spare]

    with transaction.atomic():
        assert spare_claim("zz_from_spare") == spare

    assert spare_count() == 0 and not schema_exists(spare) and schema_exists("zz_from_spare")
    migrated, claimed = catalog(TEMPLATE_SCHEMA), catalog("zz_from_spare")
    assert migrated["triggers"] and migrated["sequences"] and migrated["django_migrations"]
    assert _differences(migrated, claimed) == {}
    with connection.cursor() as cursor:  # its own tables, not the template's
        cursor.execute('SELECT count(*) FROM "zz_from_spare".storefront_storesettings')
        assert cursor.fetchone()[0] == 1
        cursor.execute(
            'INSERT INTO "zz_from_spare".storefront_taxrate (country, region, rate, '
            "name) VALUES ('DE', '', 19, 'VAT')"
        )
        cursor.execute(f'SELECT count(*) FROM "{TEMPLATE_SCHEMA}".storefront_taxrate')
        assert cursor.fetchone()[0] == 0


def test_an_empty_pool_gives_none_and_the_sign_up_clones(db):
    connection.set_schema_to_public()
    with transaction.atomic():
        assert spare_claim("zz_nothing") is None
    assert not schema_exists("zz_nothing")


def test_a_sign_up_takes_a_spare_and_a_failed_one_gives_it_back(db, monkeypatch):
    connection.set_schema_to_public()
    spare = spare_make()

    real_create = Domain.objects.create

    def failing_create(**kwargs):
        raise IntegrityError("simulated: the domain row could not be written")

    monkeypatch.setattr(Domain.objects, "create", failing_create)
    with pytest.raises(IntegrityError):
        creator_create(
            slug="pool-one",
            display_name="Pool One",
            domain="pool-one.localhost",
            owner_email="one@example.com",
        )
    connection.set_schema_to_public()
    # Rolled back as a whole: the spare is waiting under its own name, nothing else exists.
    assert spare_names() == [spare] and schema_exists(spare)
    assert not schema_exists("pool_one") and not Creator.objects.filter(slug="pool-one").exists()

    monkeypatch.setattr(Domain.objects, "create", real_create)
    made = creator_create(
        slug="pool-one",
        display_name="Pool One",
        domain="pool-one.localhost",
        owner_email="one@example.com",
    )
    connection.set_schema_to_public()
    assert spare_count() == 0 and not schema_exists(spare)
    assert applied_migrations("pool_one") == set(expected())
    with tenant_context(made.creator):
        from django.contrib.auth import get_user_model

        from storefront.models import StoreSettings

        assert get_user_model().objects.get().email == "one@example.com"
        assert StoreSettings.objects.filter(pk=1).exists()


def test_while_migrate_tenants_runs_sign_ups_clone_and_leave_the_spares_alone(db):
    connection.set_schema_to_public()
    spare = spare_make()
    with pool.claims_paused():  # what migrate_tenants holds from listing to the last schema
        with transaction.atomic():
            assert spare_claim("zz_during_deploy") is None
    assert spare_names() == [spare]
    with transaction.atomic():
        assert spare_claim("zz_after_deploy") == spare


def test_a_spare_behind_the_migrations_is_dropped_not_handed_out(db):
    connection.set_schema_to_public()
    stale, fresh = spare_make(), spare_make()
    with connection.cursor() as cursor:
        cursor.execute(
            f'DELETE FROM "{stale}".django_migrations '
            'WHERE id = (SELECT max(id) FROM "' + stale + '".django_migrations)'
        )
    assert schemas_behind([stale, fresh]) == {stale: 1}
    assert stale in tenant_schemas() and fresh in tenant_schemas()  # migrate_tenants sees both

    with transaction.atomic():
        assert spare_claim("zz_current") == fresh
    assert not schema_exists(stale) and spare_count() == 0
    assert applied_migrations("zz_current") == set(expected())


def test_a_template_whose_function_names_its_schema_makes_no_spare(db, monkeypatch):
    connection.set_schema_to_public()
    placeholder = pool._PLACEHOLDER
    sql = (
        f"CREATE SCHEMA {placeholder};\n"
        f"CREATE FUNCTION {placeholder}.f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN "
        f"RETURN (SELECT count(*) FROM {placeholder}.t); END $$;"
    )
    monkeypatch.setattr(pool, "_template_script", lambda: SimpleNamespace(sql=sql))
    with pytest.raises(ProvisioningFailed, match="renamed safely"):
        spare_make()
    assert spare_count() == 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE '\\_spare\\_%'")
        assert cursor.fetchone()[0] == 0


@pytest.mark.parametrize("wait", [False, True], ids=["fill", "claims"])
def test_a_pool_lock_is_free_the_moment_its_holder_is_done(db, monkeypatch, wait):
    """The server ends a closed session's backend, and frees its advisory locks, some time
    after the client has gone; a fill right after another (beat's, then the command's) found
    the lock still taken and reported "another fill is running". Here the holder's session
    stays open after the block, as a slow backend exit would leave it: the lock must be free."""
    lingering = []
    create = connections.create_connection

    def create_connection(alias):
        conn = create(alias)
        lingering.append(conn)
        monkeypatch.setattr(conn, "close", lambda: None)  # the backend outlives the block
        return conn

    monkeypatch.setattr(pool.connections, "create_connection", create_connection)
    key = pool._CLAIMS_LOCK if wait else pool._FILL_LOCK
    try:
        with pool._session_lock(key, wait=wait) as got:
            assert got
        other = create("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
                assert cursor.fetchone()[0] is True
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        finally:
            other.close()
    finally:
        for conn in lingering:
            type(conn).close(conn)


def _csv(tmp_path, rows):
    path = tmp_path / "creators.csv"
    path.write_text("slug,display_name,domain,owner_email\n" + "\n".join(rows) + "\n")
    return str(path)


def test_parallel_sign_ups_never_share_a_spare_and_fall_back_to_cloning(
    django_db_setup, django_db_blocker, tmp_path
):
    out = io.StringIO()
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        try:
            call_command("spares", "--fill", "3", "--jobs", "2", stdout=out)
            assert "Made 3 spare(s)" in out.getvalue() and "[3/3] 100%" in out.getvalue()
            spares = set(spare_names())
            assert len(spares) == 3
            call_command("spares", "--fill", "3", stdout=out)  # already full: makes none
            assert "Made 0 spare(s)" in out.getvalue() and spare_count() == 3

            # Five sign-ups in five workers at once, three spares: no spare goes to two of
            # them, and the two left over clone.
            path = _csv(
                tmp_path,
                [f"spare-{i},S {i},spare-{i}.localhost,s{i}@example.com" for i in range(5)],
            )
            call_command("create_creators", path, "--jobs", "5", stdout=out)
            assert "Created 5 of 5 creators" in out.getvalue()
            connection.set_schema_to_public()
            made = list(Creator.objects.filter(slug__startswith="spare-"))
            assert len({c.schema_name for c in made}) == 5
            assert spare_count() == 0 and SpareSchema.objects.count() == 0
            for name in spares:
                assert not schema_exists(name)
            for creator in made:
                assert applied_migrations(creator.schema_name) == set(expected())
                with tenant_context(creator):
                    from django.contrib.auth import get_user_model

                    assert get_user_model().objects.get().email == creator.owner_email
        finally:
            connection.set_schema_to_public()
            for creator in Creator.objects.filter(slug__startswith="spare-"):
                creator.delete(force_drop=True)
            spares_drop_all()


def test_the_spares_command_reports_and_refuses_nonsense(db):
    out = io.StringIO()
    call_command("spares", stdout=out)
    assert "0 spare schema(s) waiting" in out.getvalue()
    with pytest.raises(CommandError, match="0 or more"):
        call_command("spares", "--fill", "-1")
