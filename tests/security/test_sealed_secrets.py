"""Webhook signing secrets are encrypted at rest, readable after a key rotation, and a key
that does not fit is an error, never the ciphertext used as the secret."""

from __future__ import annotations

import importlib
from contextlib import contextmanager

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import override_settings

from partners import services
from partners.models import WebhookSubscription

FIELD = WebhookSubscription._meta.get_field("secret")
seal_migration = importlib.import_module("partners.migrations.0002_webhook_secret_sealed")


@contextmanager
def keys(**settings):
    """Settings that change the derived keys; the field caches them, so drop the cache."""

    def forget():
        FIELD.__dict__.pop("keys", None)
        FIELD.__dict__.pop("f", None)

    forget()
    try:
        with override_settings(**settings):
            yield
            forget()
    finally:
        forget()


def _stored(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM partners_webhooksubscription WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_the_secret_is_stored_encrypted_and_read_back_in_the_clear(tenant):
    secret = services.webhook_secret_new()
    sub = WebhookSubscription.objects.create(url="https://hooks.example/a", secret=secret)

    stored = _stored(sub.pk)
    assert secret not in stored and secret[5:25] not in stored
    assert stored.startswith("gAAAAA")  # a Fernet token
    assert WebhookSubscription.objects.get(pk=sub.pk).secret == secret
    # The signature a receiver checks is made with the secret, not with what is stored.
    signature = services.webhook_sign(secret=secret, timestamp=1, body=b"{}")
    assert services.webhook_verify(
        secret=WebhookSubscription.objects.get(pk=sub.pk).secret,
        timestamp="1",
        body=b"{}",
        signature=signature,
        now=1.0,
    )


def test_rows_stay_readable_across_a_secret_key_rotation(tenant, settings):
    secret = services.webhook_secret_new()
    old_key = settings.SECRET_KEY
    sub = WebhookSubscription.objects.create(url="https://hooks.example/b", secret=secret)
    before = _stored(sub.pk)

    new_key = "rotated-test-secret-key-" + "x1y2z3" * 8
    with keys(SECRET_KEY=new_key, SECRET_KEY_FALLBACKS=[old_key]):
        assert WebhookSubscription.objects.get(pk=sub.pk).secret == secret
        sub.save()  # written again: now under the new key
        after = _stored(sub.pk)
        assert after != before
    with keys(SECRET_KEY=new_key, SECRET_KEY_FALLBACKS=[]):  # the old key retired
        assert WebhookSubscription.objects.get(pk=sub.pk).secret == secret


def test_a_key_that_does_not_fit_is_an_error_not_the_ciphertext(tenant):
    sub = WebhookSubscription.objects.create(
        url="https://hooks.example/c", secret=services.webhook_secret_new()
    )
    with keys(SECRET_KEY="some-other-secret-key-" + "q9w8e7" * 8, SECRET_KEY_FALLBACKS=[]):
        with pytest.raises(ImproperlyConfigured, match="SECRET_KEY_FALLBACKS"):
            WebhookSubscription.objects.get(pk=sub.pk)


def test_the_migration_seals_secrets_that_were_stored_in_the_clear(tenant):
    plain = services.webhook_secret_new()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO partners_webhooksubscription (url, event_types, secret, is_active, "
            "description, created_at) VALUES ('https://hooks.example/d', '[]', %s, true, '', "
            "now()) RETURNING id",
            [plain],
        )
        pk = cursor.fetchone()[0]
    sealed_before = WebhookSubscription.objects.create(
        url="https://hooks.example/e", secret=services.webhook_secret_new()
    )
    token_before = _stored(sealed_before.pk)

    seal_migration.seal(apps, connection.schema_editor())

    assert plain not in _stored(pk)
    assert WebhookSubscription.objects.get(pk=pk).secret == plain
    assert _stored(sealed_before.pk) == token_before  # not encrypted twice
