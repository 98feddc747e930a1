#!/usr/bin/env bash
# The same machine's PostgreSQL commit rate for a write like a checkout's: one transaction
# inserting an order, two lines (core + bump) and three events. Checkout throughput from
# bench/checkout_load.py can then be stated as a fraction of what PostgreSQL itself commits.
#
#   bench/pgbench_limit.sh                  # CLIENTS=8 RUN_SECONDS=20 DB=storefront_bench_pgbench
#
# Uses a database of its own (dropped at the end) on PG (postgres://postgres@127.0.0.1:5432).
set -euo pipefail
PG=${PG:-postgres://postgres@127.0.0.1:5432}
DB=${DB:-storefront_bench_pgbench}
CLIENTS=${CLIENTS:-8}
SECONDS_RUN=${RUN_SECONDS:-20}
case "$DB" in storefront|test_storefront|postgres) echo "refusing to use $DB" >&2; exit 2;; esac
case "$PG" in *127.0.0.1*|*localhost*) ;; *) echo "loopback only" >&2; exit 2;; esac

work=$(mktemp -d)
cleanup() { psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null; rm -rf "$work"; }
trap cleanup EXIT

psql -q "$PG/postgres" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" -c "CREATE DATABASE \"$DB\"" >/dev/null
psql -q "$PG/$DB" >/dev/null <<'SQL'
CREATE TABLE bench_order (
  id bigserial PRIMARY KEY, token varchar(40) NOT NULL UNIQUE, customer_id bigint NOT NULL,
  status varchar(20) NOT NULL, currency char(3) NOT NULL, country char(2) NOT NULL,
  region varchar(10) NOT NULL DEFAULT '', tax_evidence jsonb NOT NULL DEFAULT '{}',
  visitor_id varchar(100) NOT NULL DEFAULT '', utm_source varchar(100) NOT NULL DEFAULT '',
  card_saved boolean NOT NULL DEFAULT true, setup_ref varchar(100) NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(), paid_at timestamptz);
CREATE INDEX ON bench_order (customer_id);
CREATE INDEX ON bench_order (status, created_at);
CREATE TABLE bench_line (
  id bigserial PRIMARY KEY, order_id bigint NOT NULL REFERENCES bench_order(id),
  kind varchar(12) NOT NULL, product_id bigint NOT NULL, description varchar(200) NOT NULL,
  net_amount int NOT NULL, tax_amount int NOT NULL, total_amount int NOT NULL,
  currency char(3) NOT NULL, tax_rate numeric(6,3) NOT NULL,
  UNIQUE (order_id, kind));
CREATE TABLE bench_event (
  id bigserial PRIMARY KEY, name varchar(40) NOT NULL, order_id bigint, customer_id bigint,
  offer_id bigint, product_id bigint, amount int, source varchar(100) NOT NULL DEFAULT '',
  properties jsonb NOT NULL DEFAULT '{}', created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON bench_event (name, created_at);
CREATE INDEX ON bench_event (order_id);
SQL
cat > "$work/checkout.sql" <<'SQL'
\set customer random(1, 1000000)
BEGIN;
INSERT INTO bench_order (token, customer_id, status, currency, country, tax_evidence)
  VALUES (md5(random()::text || clock_timestamp()::text), :customer, 'pending', 'USD', 'US',
          '{"country": "US", "source": "buyer_declared_billing_country"}') RETURNING id AS oid \gset
INSERT INTO bench_line (order_id, kind, product_id, description, net_amount, tax_amount,
                        total_amount, currency, tax_rate)
  VALUES (:oid, 'core', 1, 'Photo course', 4900, 0, 4900, 'USD', 0),
         (:oid, 'bump', 2, 'Preset pack', 900, 0, 900, 'USD', 0);
INSERT INTO bench_event (name, order_id, customer_id, product_id, amount)
  VALUES ('checkout_initiated', :oid, :customer, 1, 5800),
         ('bump_offered', :oid, :customer, 2, NULL),
         ('bump_accepted', :oid, :customer, 2, 900);
COMMIT;
SQL
echo "pgbench: $CLIENTS clients, ${SECONDS_RUN}s, one order + 2 lines + 3 events per transaction"
pgbench -n -c "$CLIENTS" -j 2 -T "$SECONDS_RUN" -f "$work/checkout.sql" "$PG/$DB" 2>&1 \
  | grep -E "transactions actually processed|latency average|tps =|failed"
