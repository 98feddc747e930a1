from django.db import migrations

# The event log is append-only: the database itself refuses UPDATE and DELETE.
FORWARD = """
CREATE OR REPLACE FUNCTION analytics_event_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'analytics_event is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER analytics_event_no_update_delete
    BEFORE UPDATE OR DELETE ON analytics_event
    FOR EACH ROW EXECUTE FUNCTION analytics_event_append_only();
"""
BACKWARD = """
DROP TRIGGER IF EXISTS analytics_event_no_update_delete ON analytics_event;
DROP FUNCTION IF EXISTS analytics_event_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("analytics", "0001_initial")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
