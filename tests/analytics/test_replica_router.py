"""core/replica.py without a standby: where reads and writes go when no replica is usable."""

from django.db import DEFAULT_DB_ALIAS

from core import replica


def test_the_replica_is_never_migrated_or_written():
    router = replica.ReplicaRouter()
    assert router.allow_migrate(replica.REPLICA, "storefront") is False
    assert router.allow_migrate(DEFAULT_DB_ALIAS, "storefront") is None  # the tenants' router
    assert router.db_for_write(object) == DEFAULT_DB_ALIAS


def test_without_a_replica_every_read_is_on_the_primary(settings):
    assert replica.REPLICA not in settings.DATABASES
    assert replica.read_alias() == DEFAULT_DB_ALIAS
    with replica.replica_reads():
        assert replica.read_alias() == DEFAULT_DB_ALIAS
        assert replica.ReplicaRouter().db_for_read(object) == DEFAULT_DB_ALIAS
    assert replica.read_with_fallback(lambda alias: alias) == DEFAULT_DB_ALIAS


def test_the_settings_take_a_replica_url(monkeypatch):
    import importlib

    import config.settings.base as base

    monkeypatch.setenv("DATABASE_REPLICA_URL", "postgres://reader@replica.internal:5432/store")
    try:
        fresh = importlib.reload(base)
        entry = fresh.DATABASES["replica"]
        assert (entry["HOST"], entry["NAME"], entry["ENGINE"]) == (
            "replica.internal",
            "store",
            "tenants.backend",
        )
        assert fresh.DATABASE_ROUTERS[0] == "core.replica.ReplicaRouter"
    finally:
        monkeypatch.delenv("DATABASE_REPLICA_URL")
        importlib.reload(base)
