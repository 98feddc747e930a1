"""SQL statements per request for each hosted page and partner API route, and how many of
them are `SET search_path` (the target is one per request at most, zero when unchanged).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/storefront_bench_queries \
      .venv/bin/python -m bench.query_budgets

Runs in-process (Django's test client, production settings, the gateway stub on a thread),
counting every statement the database connection executes, SETs included (tenants.backend
sends them through Django's cursor wrapper, so `execute_wrapper` sees them). Each route is
requested once to warm caches, then measured on a fresh buyer's second pass. The database is
dropped at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import sys
import time

from bench.harness import HOST, ROOT, Run, db_name_from_env, say
from bench.stub_gateway import StubGateway


class Counter:
    def __init__(self) -> None:
        self.queries = 0
        self.search_path = 0
        self.statements: list[str] = []

    def __call__(self, execute, sql, params, many, context):
        self.queries += 1
        if sql.lstrip().upper().startswith("SET SEARCH_PATH"):
            self.search_path += 1
        self.statements.append(sql[:120])
        return execute(sql, params, many, context)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--show-sql", action="store_true")
    args = parser.parse_args()
    server, db = db_name_from_env("storefront_bench_queries")
    run = Run(
        server=server, db=db, redis_url=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/10")
    )
    stub = StubGateway(delay=0).start()
    run.stub_port = stub.port
    rows: list[tuple[str, str, int, int, int]] = []
    try:
        catalog = run.create_database()
        run.django_setup()
        from django.db import connection
        from django.test import Client
        from django_tenants.utils import tenant_context

        from offers.models import Coupon
        from partners.services import api_key_create
        from tenants.models import Creator

        with tenant_context(Creator.objects.get(slug="load")):
            token = api_key_create(name="bench", scope="read").token
            # A checkout with a coupon applied must cost no more queries than one without.
            Coupon.objects.create(code="BENCH10", percent_off="10.00", max_per_customer=None)
        connection.set_schema_to_public()
        connection.close()  # a request starts on a fresh connection, as in a worker

        fresh = [False]

        def measure(client, label, method, path, **kw):
            if fresh[0]:
                connection.close()  # as with CONN_MAX_AGE=0, or a worker's first request
            counter = Counter()
            with connection.execute_wrapper(counter):
                response = getattr(client, method)(path, secure=True, HTTP_HOST=HOST, **kw)
            return response, counter, label

        def flow(n: int, record: bool):
            client = Client()
            out = []
            slug = catalog["core"]
            out.append(measure(client, "store index", "get", "/"))
            out.append(measure(client, "product page", "get", f"/p/{slug}/"))
            out.append(measure(client, "checkout page", "get", f"/checkout/{slug}/"))
            out.append(
                measure(
                    client,
                    "checkout quote",
                    "get",
                    f"/checkout/{slug}/quote?country=US&bump={catalog['bump']}&add_bump=on",
                )
            )
            out.append(
                measure(
                    client, "checkout page (coupon)", "get", f"/checkout/{slug}/?coupon=BENCH10"
                )
            )
            out.append(
                measure(
                    client,
                    "checkout quote (coupon)",
                    "get",
                    f"/checkout/{slug}/quote?country=US&bump={catalog['bump']}&add_bump=on"
                    "&coupon=BENCH10",
                )
            )
            r, c, label = measure(
                client,
                "checkout start (+bump)",
                "post",
                f"/checkout/{slug}/start",
                data={
                    "email": f"q{n}@example.com",
                    "country": "US",
                    "save_card": "on",
                    "bump": catalog["bump"],
                    "add_bump": "on",
                },
            )
            out.append((r, c, label))
            started = r.json()
            order = started["order"]
            setup = started["setup_client_secret"].split("_secret_")[0]
            out.append(
                measure(
                    client, "checkout pay", "post", started["pay_url"], data={"setup_intent": setup}
                )
            )
            out.append(measure(client, "order next", "get", f"/o/{order}/next"))
            r, c, label = measure(client, "upsell offer page", "get", f"/o/{order}/offer")
            out.append((r, c, label))
            signed = re.search(r'name="token" value="([^"]+)"', r.content.decode()).group(1)
            out.append(measure(client, "upsell status (poll)", "get", f"/o/{order}/offer/status"))
            out.append(
                measure(
                    client,
                    "upsell accept",
                    "post",
                    f"/o/{order}/offer/accept",
                    data={"token": signed},
                )
            )
            out.append(measure(client, "order thanks", "get", f"/o/{order}/thanks"))
            intent = stub.state.intents[sorted(stub.state.intents)[-1]]
            body = json.dumps(
                {
                    "id": f"evt_{n}",
                    "object": "event",
                    "type": "payment_intent.succeeded",
                    "created": int(time.time()),
                    "data": {"object": {"id": intent["id"], "object": "payment_intent"}},
                }
            ).encode()
            ts = int(time.time())
            sig = hmac.new(
                run.webhook_secret.encode(), f"{ts}.".encode() + body, hashlib.sha256
            ).hexdigest()
            out.append(
                measure(
                    client,
                    "gateway webhook",
                    "post",
                    "/webhooks/stripe/",
                    data=body,
                    content_type="application/json",
                    HTTP_STRIPE_SIGNATURE=f"t={ts},v1={sig}",
                )
            )
            api = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
            for _name, path in (
                ("products", "/api/v1/products/"),
                ("offers", "/api/v1/offers/"),
                ("customers", "/api/v1/customers/"),
                ("orders", "/api/v1/orders/"),
                ("events", "/api/v1/events/"),
            ):
                r, c, label = measure(client, f"API GET {path}", "get", path, **api)
                out.append((r, c, label))
                items = r.json().get("results") or []
                if items and "id" in items[0]:
                    detail = f"{path}{items[0]['id']}/"
                    out.append(measure(client, f"API GET {path}<id>/", "get", detail, **api))
            return out

        flow(0, record=False)  # warm: host cache, templates, first connection
        persistent = flow(1, record=True)
        fresh[0] = True
        on_fresh = flow(2, record=True)
        for (response, counter, label), (_, counter2, _) in zip(persistent, on_fresh, strict=True):
            rows.append(
                (
                    label,
                    str(response.status_code),
                    counter.queries,
                    counter.search_path,
                    counter2.queries,
                    counter2.search_path,
                )
            )
            if args.show_sql:
                print(f"--- {label}")
                for s in counter.statements:
                    print("   ", s)
        print(
            "\n| route | status | SQL statements | SET search_path | on a new connection: "
            "statements | SET search_path |"
        )
        print("|---|---|---|---|---|---|")
        for label, status, queries, sets, queries2, sets2 in rows:
            print(f"| {label} | {status} | {queries} | {sets} | {queries2} | {sets2} |")
        over = [r[0] for r in rows if r[3] > 1 or r[5] > 1]
        print(f"\nroutes with more than one SET search_path: {len(over)} {over}")
    finally:
        out = ROOT / ".local" / "bench-query-budgets.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(rows, indent=2))
        say(f"results in {out}")
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 - Django may not be set up if seeding failed
            pass
        stub.stop()
        run.close(drop=not args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
