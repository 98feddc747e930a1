"""Cloned creator schemas are indistinguishable from migrated ones; bulk creation reports."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from tenants.models import Creator, Domain
from tenants.provisioning import (
    applied_migrations,
    expected_migrations,
    schema_clone,
    schema_migrate_fresh,
)

CATALOG = {
    "relations": """
        SELECT c.relname, c.relkind, c.relpersistence FROM pg_class c
        WHERE c.relnamespace = %(ns)s::regnamespace ORDER BY 1""",
    "columns": """
        SELECT c.relname, a.attname,
               row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum),
               format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity,
               a.attgenerated, pg_get_expr(d.adbin, d.adrelid), a.attcollation
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relnamespace = %(ns)s::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
          AND c.relkind IN ('r', 'p', 'v', 'm')
        ORDER BY 1, 3""",
    "constraints": """
        SELECT c.relname, k.conname, k.contype, k.condeferrable, k.condeferred,
               pg_get_constraintdef(k.oid)
        FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
        WHERE k.connamespace = %(ns)s::regnamespace ORDER BY 1, 2""",
    "indexes": """
        SELECT tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = %(ns)s ORDER BY 1, 2""",
    "triggers": """
        SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        WHERE c.relnamespace = %(ns)s::regnamespace AND NOT t.tgisinternal ORDER BY 1, 2""",
    "functions": """
        SELECT p.proname, pg_get_function_identity_arguments(p.oid),
               pg_get_function_result(p.oid), p.prosrc, l.lanname, p.provolatile
        FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
        WHERE p.pronamespace = %(ns)s::regnamespace ORDER BY 1, 2""",
    "sequences": """
        SELECT s.relname, q.seqtypid::regtype, q.seqstart, q.seqincrement, q.seqmax, q.seqmin,
               q.seqcache, q.seqcycle, t.relname, a.attname, d.deptype
        FROM pg_sequence q JOIN pg_class s ON s.oid = q.seqrelid
        LEFT JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass
             AND d.refclassid = 'pg_class'::regclass
        LEFT JOIN pg_class t ON t.oid = d.refobjid
        LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE s.relnamespace = %(ns)s::regnamespace ORDER BY 1""",
}


# The one place a clone is not byte-identical, and why: PostgreSQL stores Django's
# `"kind" IN ('a', 'b')` on a varchar column as `= ANY ((ARRAY['a'::varchar, …])::text[])`, but
# when that deparsed text is parsed again (as pg_dump's output is) the cast is pushed into each
# element: `= ANY (ARRAY[('a'::varchar)::text, …])`. Same values, same operator, same result
# for every row; a different node tree. This rewrites the first form into the second and
# nothing else, so any other difference still fails the comparison.
_IN_LIST = re.compile(r"\(\(ARRAY\[((?:'[^']*'::character varying(?:, )?)+)\]\)::text\[\]\)")


def _in_list_as_reparsed(text: str) -> str:
    def rewrite(match: re.Match) -> str:
        items = re.findall(r"'[^']*'::character varying", match.group(1))
        return "(ARRAY[" + ", ".join(f"({item})::text" for item in items) + "])"

    return _IN_LIST.sub(rewrite, text)


def catalog(schema: str) -> dict[str, list]:
    """The schema's catalog with its own name replaced, so two schemas can be compared."""
    name = re.compile(rf'(?<![\w"])"?{re.escape(schema)}"?\.')
    result = {}
    with connection.cursor() as cursor:
        for part, sql in CATALOG.items():
            cursor.execute(sql, {"ns": schema})
            result[part] = [
                tuple(
                    _in_list_as_reparsed(name.sub("S.", v)) if isinstance(v, str) else v
                    for v in row
                )
                for row in cursor.fetchall()
            ]
        q = f'"{schema}"'
        for part, sql in [
            ("django_migrations", f"SELECT app, name FROM {q}.django_migrations"),
            # By natural key: ids depend on the order models appeared, not on the schema.
            ("django_content_type", f"SELECT app_label, model FROM {q}.django_content_type"),
            (
                "auth_permission",
                f"SELECT t.app_label, t.model, p.codename, p.name "
                f"FROM {q}.auth_permission p "
                f"JOIN {q}.django_content_type t ON t.id = p.content_type_id",
            ),
        ]:
            cursor.execute(sql + (" ORDER BY 1, 2, 3" if "codename" in sql else " ORDER BY 1, 2"))
            result[part] = cursor.fetchall()
    return result


def test_a_cloned_schema_has_the_same_catalog_as_a_migrated_one(db):
    connection.set_schema_to_public()
    schema_migrate_fresh("zz_migrated")
    schema_clone("zz_cloned")
    connection.set_schema_to_public()  # same search_path for both reads

    migrated, cloned = catalog("zz_migrated"), catalog("zz_cloned")
    assert migrated["triggers"], "the append-only trigger should be in a tenant schema"
    assert migrated["functions"] and migrated["sequences"] and migrated["django_migrations"]
    differences = {
        part: (
            sorted(set(migrated[part]) - set(cloned[part])),
            sorted(set(cloned[part]) - set(migrated[part])),
        )
        for part in migrated
        if cloned[part] != migrated[part]
    }
    assert differences == {}
    assert {tuple(r) for r in cloned["django_migrations"]} == set(expected_migrations())
    # Sequence positions follow the template's (whose rows were copied), not a fresh history.
    with connection.cursor() as cursor:
        positions = "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = %s "
        cursor.execute(positions + "ORDER BY 1", ["zz_cloned"])
        cloned_positions = cursor.fetchall()
        cursor.execute(positions + "ORDER BY 1", ["_tenant_template"])
        assert cloned_positions == cursor.fetchall()

    # The comparison is not blind: one missing trigger is a difference.
    with connection.cursor() as cursor:
        cursor.execute(
            'DROP TRIGGER analytics_event_no_update_delete ON "zz_cloned".analytics_event'
        )
    assert catalog("zz_cloned")["triggers"] != migrated["triggers"]


def test_a_cloned_schema_is_its_own_and_not_the_templates(db):
    connection.set_schema_to_public()
    schema_clone("zz_own")
    with connection.cursor() as cursor:
        cursor.execute(
            'INSERT INTO "zz_own".storefront_product (slug, name, description, tier, '
            "ladder_position, price_amount, currency, deliverable_url, "
            "deliverable_file, status, created_at, refund_terms) SELECT 'x', 'x', '', "
            "'entry', 0, 1, 'USD', '', '', 'active', now(), '' RETURNING id"
        )
        assert cursor.fetchone()[0] == 1
        cursor.execute('SELECT count(*) FROM "_tenant_template".storefront_product')
        assert cursor.fetchone()[0] == 0
        cursor.execute('SELECT max(id) FROM "_tenant_template".django_migrations')
        template_max = cursor.fetchone()[0]
        cursor.execute(
            'INSERT INTO "zz_own".django_migrations (app, name, applied) '
            "VALUES ('x', 'y', now()) RETURNING id"
        )
        assert cursor.fetchone()[0] == template_max + 1


def _csv(tmp_path, rows):
    path = tmp_path / "creators.csv"
    path.write_text("slug,display_name,domain,owner_email\n" + "\n".join(rows) + "\n")
    return str(path)


def test_bulk_creation_creates_good_rows_reports_bad_ones_and_shows_progress(db, tmp_path):
    path = _csv(
        tmp_path,
        [
            "bulk-one,Bulk One,bulk-one.localhost,one@example.com",
            "Bad Slug,Bad,bad.localhost,bad@example.com",
            "bulk-two,Bulk Two,bulk-two.localhost,two@example.com",
        ],
    )
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="Created 2 of 3 creators.*1 failed"):
        call_command("create_creators", path, "--jobs", "1", stdout=out, stderr=err)
    assert "[3/3] 100%" in out.getvalue()
    assert "Bad Slug" in err.getvalue() and "slug" in err.getvalue()
    connection.set_schema_to_public()
    assert set(Creator.objects.filter(slug__startswith="bulk-").values_list("slug", flat=True)) == {
        "bulk-one",
        "bulk-two",
    }
    assert Domain.objects.get(domain="bulk-two.localhost").tenant.slug == "bulk-two"


def test_bulk_creation_in_parallel_workers_makes_every_creator(
    django_db_setup, django_db_blocker, tmp_path
):
    path = _csv(
        tmp_path, [f"par-{i},Parallel {i},par-{i}.localhost,p{i}@example.com" for i in range(4)]
    )
    out = io.StringIO()
    with django_db_blocker.unblock():
        try:
            call_command("create_creators", path, "--jobs", "2", stdout=out)
            assert "Created 4 of 4 creators" in out.getvalue()
            connection.set_schema_to_public()
            made = Creator.objects.filter(slug__startswith="par-")
            assert made.count() == 4
            for creator in made:
                assert applied_migrations(creator.schema_name) == set(expected_migrations())
        finally:
            connection.set_schema_to_public()
            for creator in Creator.objects.filter(slug__startswith="par-"):
                creator.delete(force_drop=True)


def test_bulk_creation_leaves_nothing_of_a_creator_that_fails_and_reports_repeats(
    django_db_setup, django_db_blocker, tmp_path
):
    from django.contrib.auth import get_user_model
    from django_tenants.utils import tenant_context

    path = _csv(
        tmp_path,
        [
            "lean-one,Lean One,lean-one.localhost,one@example.com",
            "lean-clash,Clash,lean-clash.localhost,clash@example.com",
            "lean-two,Lean Two,lean-one.localhost,two@example.com",
            "lean-three,Lean Three,lean-three.localhost,three@example.com",
        ],
    )
    out, err = io.StringIO(), io.StringIO()
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        with connection.cursor() as cursor:  # the schema exists already: its DDL must fail
            cursor.execute('CREATE SCHEMA "lean_clash"')
        try:
            with pytest.raises(CommandError, match="Created 2 of 4 creators.*2 failed"):
                call_command("create_creators", path, "--jobs", "2", stdout=out, stderr=err)
            assert "[4/4] 100%" in out.getvalue()
            assert "lean-two: domain 'lean-one.localhost' is taken" in err.getvalue()
            assert "lean-clash:" in err.getvalue() and "already exists" in err.getvalue()
            connection.set_schema_to_public()
            assert set(
                Creator.objects.filter(slug__startswith="lean-").values_list("slug", flat=True)
            ) == {"lean-one", "lean-three"}
            assert not Domain.objects.filter(domain="lean-clash.localhost").exists()
            assert Domain.objects.get(domain="lean-one.localhost").tenant.slug == "lean-one"
            with connection.cursor() as cursor:  # the hand-made schema is untouched and empty
                cursor.execute(
                    "SELECT count(*) FROM pg_class WHERE relnamespace = 'lean_clash'::regnamespace"
                )
                assert cursor.fetchone()[0] == 0
            for creator in Creator.objects.filter(slug__startswith="lean-"):
                assert applied_migrations(creator.schema_name) == set(expected_migrations())
                with tenant_context(creator):
                    owner = get_user_model().objects.get()
                    assert (owner.username, owner.email) == ("owner", creator.owner_email)
                    assert owner.is_superuser and owner.is_staff and owner.is_active
                    assert not owner.has_usable_password()
        finally:
            connection.set_schema_to_public()
            for creator in Creator.objects.filter(slug__startswith="lean-"):
                creator.delete(force_drop=True)
            with connection.cursor() as cursor:
                cursor.execute('DROP SCHEMA IF EXISTS "lean_clash" CASCADE')
