from django.db import migrations


def create_row(apps, schema_editor):
    DunningSettings = apps.get_model("subscriptions", "DunningSettings")
    DunningSettings.objects.get_or_create(
        pk=1, defaults={"retry_days": [1, 3, 5, 7], "final_action": "cancel"}
    )


class Migration(migrations.Migration):
    dependencies = [("subscriptions", "0001_initial")]

    operations = [migrations.RunPython(create_row, migrations.RunPython.noop)]
