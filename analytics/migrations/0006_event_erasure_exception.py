from django.db import migrations

# One documented exception to the append-only event log: a buyer's erasure (storefront.privacy)
# may replace their address where an event carries it. Inside a transaction that ran
# `SET LOCAL storefront.erasure = 'on'` an UPDATE may change visitor_id and properties, and
# nothing else (names, times, ids and amounts stay); DELETE stays refused. See
# audit/migrations/0003 for why this and not a redaction table.
FORWARD = """
CREATE OR REPLACE FUNCTION analytics_event_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND current_setting('storefront.erasure', true) = 'on'
       AND (to_jsonb(NEW) - ARRAY['visitor_id', 'properties'])
           = (to_jsonb(OLD) - ARRAY['visitor_id', 'properties']) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'analytics_event is append-only';
END;
$$ LANGUAGE plpgsql;
"""
BACKWARD = """
CREATE OR REPLACE FUNCTION analytics_event_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'analytics_event is append-only';
END;
$$ LANGUAGE plpgsql;
"""


class Migration(migrations.Migration):
    dependencies = [("analytics", "0005_metric_definitions")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
