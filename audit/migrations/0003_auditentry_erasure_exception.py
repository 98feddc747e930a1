from django.db import migrations

# One documented exception to the append-only trail: a buyer's erasure (storefront.privacy)
# must remove their address from the entries' details. Inside a transaction that ran
# `SET LOCAL storefront.erasure = 'on'` an UPDATE may change object_repr, summary and changes,
# and nothing else; DELETE stays refused. A side table of redactions would leave the address in
# the row; dropping the trigger for the erasure would open the table to every writer meanwhile.
FORWARD = """
CREATE OR REPLACE FUNCTION audit_auditentry_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND current_setting('storefront.erasure', true) = 'on'
       AND (to_jsonb(NEW) - ARRAY['object_repr', 'summary', 'changes'])
           = (to_jsonb(OLD) - ARRAY['object_repr', 'summary', 'changes']) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_auditentry is append-only';
END;
$$ LANGUAGE plpgsql;
"""
BACKWARD = """
CREATE OR REPLACE FUNCTION audit_auditentry_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_auditentry is append-only';
END;
$$ LANGUAGE plpgsql;
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_auditentry_append_only")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
