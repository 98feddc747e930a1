from django.db import migrations

# Every process caches host → creator; any change that can make a cached entry wrong tells
# them all (tenants.routing listens). INSERT cannot: misses are never cached.
FORWARD = """
CREATE OR REPLACE FUNCTION tenants_routing_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('tenants_routing', TG_TABLE_NAME);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER tenants_domain_routing_notify
    AFTER UPDATE OR DELETE OR TRUNCATE ON tenants_domain
    FOR EACH STATEMENT EXECUTE FUNCTION tenants_routing_notify();
CREATE TRIGGER tenants_creator_routing_notify
    AFTER UPDATE OR DELETE OR TRUNCATE ON tenants_creator
    FOR EACH STATEMENT EXECUTE FUNCTION tenants_routing_notify();
"""
BACKWARD = """
DROP TRIGGER IF EXISTS tenants_domain_routing_notify ON tenants_domain;
DROP TRIGGER IF EXISTS tenants_creator_routing_notify ON tenants_creator;
DROP FUNCTION IF EXISTS tenants_routing_notify();
"""


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
