import django.contrib.postgres.fields
from django.db import migrations, models

# The read models change meaning (funnel steps split upsell/downsell/cross-sell, every line
# kind in the line summary, matched to the ledger by its line key, offers offered/accepted/
# taken per order, sessions as visitor-days): empty them and queue every event and paid
# order, so the next rollups_refresh (or `manage.py analytics_backfill`) recomputes them.
REQUEUE = """
TRUNCATE analytics_eventday, analytics_visitorfirst, analytics_visitorfirstday,
         analytics_ordersummary, analytics_offerlinesummary, analytics_customersummary,
         analytics_visitorday;
DELETE FROM analytics_rollupqueue;
INSERT INTO analytics_rollupqueue (kind, ref) SELECT 'e', id FROM analytics_event;
INSERT INTO analytics_rollupqueue (kind, ref)
    SELECT 'o', id FROM storefront_order WHERE paid_at IS NOT NULL;
"""


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0004_rollups'),
    ]

    operations = [
        migrations.CreateModel(
            name='VisitorDay',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('day', models.DateField()),
                ('scope', models.CharField(max_length=101)),
                ('visitor_id', models.CharField(max_length=64)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('day', 'scope', 'visitor_id'), name='visitorday_unique')],
            },
        ),
        migrations.AddField(
            model_name='ordersummary',
            name='offered_ids',
            field=django.contrib.postgres.fields.ArrayField(base_field=models.BigIntegerField(), default=list, size=None),
        ),
        migrations.AddField(
            model_name='ordersummary',
            name='accepted_ids',
            field=django.contrib.postgres.fields.ArrayField(base_field=models.BigIntegerField(), default=list, size=None),
        ),
        migrations.AddField(
            model_name='ordersummary',
            name='taken_ids',
            field=django.contrib.postgres.fields.ArrayField(base_field=models.BigIntegerField(), default=list, size=None),
        ),
        migrations.AddField(
            model_name='offerlinesummary',
            name='kind',
            field=models.CharField(default='core', max_length=12),
        ),
        migrations.AddField(
            model_name='offerlinesummary',
            name='paid_at',
            field=models.DateTimeField(null=True),
        ),
        migrations.AlterField(
            model_name='offerlinesummary',
            name='offer_id',
            field=models.BigIntegerField(null=True),
        ),
        migrations.RunSQL(REQUEUE, migrations.RunSQL.noop),
    ]
