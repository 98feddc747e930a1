"""Webhook signing secrets move from plain text to Fernet tokens (core.fields.SealedCharField).

Existing secrets are read as they are stored and written back encrypted, in the same
migration, so no row is left in the clear and none is encrypted twice.
"""
from django.db import migrations

import core.fields


def seal(apps, schema_editor):
    field = apps.get_model("partners", "WebhookSubscription")._meta.get_field("secret")
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT id, secret FROM partners_webhooksubscription")
        for pk, secret in cursor.fetchall():
            if secret and secret.startswith("whsk_"):  # ours, in the clear
                cursor.execute(
                    "UPDATE partners_webhooksubscription SET secret = %s WHERE id = %s",
                    [field.get_prep_value(secret), pk],
                )


def unseal(apps, schema_editor):
    field = apps.get_model("partners", "WebhookSubscription")._meta.get_field("secret")
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT id, secret FROM partners_webhooksubscription")
        for pk, token in cursor.fetchall():
            cursor.execute(
                "UPDATE partners_webhooksubscription SET secret = %s WHERE id = %s",
                [field.to_python(token), pk],
            )


class Migration(migrations.Migration):
    dependencies = [("partners", "0001_initial")]

    operations = [
        migrations.AlterField(
            model_name="webhooksubscription",
            name="secret",
            field=core.fields.SealedCharField(editable=False, max_length=80),
        ),
        migrations.RunPython(seal, unseal),
    ]
