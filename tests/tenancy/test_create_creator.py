"""`create_creator` provisions everything or nothing; `seed_demo` is idempotent (its history:
tests/analytics/test_demo_history.py)."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django_tenants.utils import tenant_context

from storefront.models import Product
from tenants.models import Creator, Domain


def _schema_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [name])
        return cursor.fetchone() is not None


def _counts():
    connection.set_schema_to_public()
    return Creator.objects.count(), Domain.objects.count()


@pytest.mark.parametrize(
    "args, reason",
    [
        (["Bad_Slug", "Shop", "bad.localhost", "a@example.com"], "slug"),
        (["ok-slug", "Shop", "t1.localhost", "a@example.com"], "taken"),
        (["ok-slug", "Shop", "ok.localhost", "not-an-email"], "email"),
        (["public", "Shop", "ok.localhost", "a@example.com"], "reserved"),
        (["ok-slug", "Shop", "bad host!", "a@example.com"], "domain"),
        (["t1", "Shop", "new.localhost", "a@example.com"], "taken"),
    ],
)
def test_create_creator_with_bad_input_says_why_and_leaves_nothing(db, args, reason):
    before = _counts()
    with pytest.raises(CommandError) as excinfo:
        call_command("create_creator", *args, stdout=io.StringIO())
    assert reason in str(excinfo.value)
    assert _counts() == before
    assert not _schema_exists("ok_slug") and not _schema_exists("bad_slug")


def test_create_creator_failing_midway_leaves_no_schema_domain_or_user(db, monkeypatch):
    from django.contrib.auth.models import UserManager

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(UserManager, "create_superuser", boom)
    before = _counts()
    with pytest.raises(RuntimeError):
        call_command("create_creator", "half-made", "Half", "half.localhost", "h@example.com")
    assert _counts() == before
    assert not _schema_exists("half_made")


def test_create_creator_provisions_schema_domain_and_owner(db):
    out = io.StringIO()
    call_command(
        "create_creator",
        "fresh-shop",
        "Fresh Shop",
        "fresh.localhost",
        "f@example.com",
        "--password",
        "pw-123456",
        stdout=out,
    )
    assert "owner / pw-123456" in out.getvalue()
    creator = Creator.objects.get(slug="fresh-shop")
    assert creator.schema_name == "fresh_shop" and _schema_exists("fresh_shop")
    assert Domain.objects.get(domain="fresh.localhost").tenant == creator
    with tenant_context(creator):
        owner = get_user_model().objects.get(username="owner")
        assert owner.is_superuser and owner.check_password("pw-123456")


def test_seeding_the_demo_twice_creates_nothing_twice(db):
    call_command("seed_demo", "--no-history", stdout=io.StringIO())
    call_command("seed_demo", "--no-history", stdout=io.StringIO())
    connection.set_schema_to_public()
    assert Creator.objects.filter(slug="demo").count() == 1
    assert Domain.objects.filter(domain="demo.localhost").count() == 1
    with tenant_context(Creator.objects.get(slug="demo")):
        assert Product.objects.count() == 5  # the ladder's four and the membership
        from offers.models import Offer
        from storefront.models import TaxRate
        from subscriptions.models import Plan

        [plan] = Plan.objects.all()  # one plan, made once
        assert plan.product.slug == "photo-club" and plan.trial_days == 7

        kinds = sorted(Offer.objects.values_list("kind", flat=True))
        assert kinds == ["bump", "cross_sell", "downsell", "upsell"]
        assert Offer.objects.get(kind="downsell").parent == Offer.objects.get(kind="upsell")
        assert TaxRate.objects.count() == 4
        # The owner and the demo's support member (storefront/team.py), once each.
        assert sorted(get_user_model().objects.values_list("username", flat=True)) == [
            "owner",
            "support@demo.example",
        ]


@pytest.mark.gateway
def test_the_demo_store_starts_verified_and_connected_once(db):
    from payments.connect import payments_block_reason
    from payments.models import PayoutAccount
    from tests.payments.helpers import sdk

    call_command("seed_demo", "--no-history", stdout=io.StringIO())
    call_command("seed_demo", "--no-history", stdout=io.StringIO())
    connection.set_schema_to_public()
    demo = Creator.objects.get(slug="demo")
    assert demo.email_verified_at is not None
    with tenant_context(demo):
        (account,) = PayoutAccount.objects.all()
        assert account.charges_enabled and account.payouts_enabled
        assert payments_block_reason(creator=demo) is None
    assert demo.payout_account_ref == account.account_ref
    assert [a.id for a in sdk().v1.accounts.list().data] == [account.account_ref]
