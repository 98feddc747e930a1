from django.db import migrations

# storefront.page_cache.CHANNEL and WATCHED_TABLES as of this migration (a later change to
# that list needs a migration of its own).
CHANNEL = "storefront_pages"
WATCHED_TABLES = (
    "storefront_product",
    "storefront_productimage",
    "storefront_testimonial",
    "storefront_storesettings",
    "storefront_taxrate",
    "storefront_storebrand",
    "offers_offer",
    "analytics_experiment",
    "payments_payoutaccount",
    "subscriptions_plan",
)
# Every process caches hosted pages (storefront.page_cache); any write to a table a page
# shows, through the ORM or not, tells them all which store changed. Per statement: a bulk
# update is one notification, and PostgreSQL folds identical ones within a transaction.
FUNCTION = f"""
CREATE OR REPLACE FUNCTION storefront_pages_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', TG_TABLE_SCHEMA);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
"""
TRIGGER = """
CREATE TRIGGER {table}_pages_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION storefront_pages_notify();
"""
FORWARD = FUNCTION + "".join(TRIGGER.format(table=t) for t in WATCHED_TABLES)
BACKWARD = "".join(
    f"DROP TRIGGER IF EXISTS {t}_pages_notify ON {t};\n" for t in WATCHED_TABLES
) + "DROP FUNCTION IF EXISTS storefront_pages_notify();"


class Migration(migrations.Migration):
    dependencies = [
        ("storefront", "0010_merge_0009_invoice_emailed_at_0009_money_help_texts"),
        ("offers", "0004_money_help_texts"),
        ("analytics", "0008_dispute_outcome_events"),
        ("payments", "0008_merge_0007_charge_attempt_demo_0007_dispute_lifecycle"),
        ("subscriptions", "0004_setup_fee_help_text"),
    ]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
