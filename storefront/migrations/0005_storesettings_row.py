"""Every store has its settings row from the start, so reading it never writes.

Before this, `StoreSettings.current()` created the row on a store's first page view: a write
(and a commit) on a GET. New stores get the row from the template schema they are cloned from.
"""
from django.db import migrations


def settings_row_ensure(apps, schema_editor):
    StoreSettings = apps.get_model("storefront", "StoreSettings")
    StoreSettings.objects.using(schema_editor.connection.alias).get_or_create(pk=1)


class Migration(migrations.Migration):
    dependencies = [("storefront", "0004_product_refund_terms")]

    operations = [migrations.RunPython(settings_row_ensure, migrations.RunPython.noop)]
