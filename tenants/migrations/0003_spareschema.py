from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("tenants", "0002_routing_notify")]

    operations = [
        migrations.CreateModel(
            name="SpareSchema",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                           verbose_name="ID")),
                ("schema_name", models.CharField(max_length=63, unique=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={"ordering": ["id"]},
        ),
    ]
