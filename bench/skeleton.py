"""A skeleton buyer: the I/O a paid checkout with its upsell does, with none of its logic.

Each of a buyer's four money requests is replaced by one view (`skeleton`) that makes the same
number of round trips as the real route (statements through Django's cursor, some of them in
transactions with their BEGIN and COMMIT, cache reads from Redis, calls through the gateway's
SDK client to the stub) and nothing else; the product and checkout pages are the real, kept
ones. The statements are `SELECT %s`, cheaper for PostgreSQL than the real INSERTs and
UPDATEs with their indexes, triggers and foreign keys; the views check no CSRF token, render
no template and build no model. So the skeleton's rate is what any code could reach on this
machine with today's round trips: a ceiling, not an estimate (bench/README.md "A skeleton
checkout").

    python -m bench.checkout_load … --skeleton          # a phase after the real buyers
"""

from __future__ import annotations

import uuid

from django.core.cache import cache
from django.db import connection, transaction
from django.http import HttpResponse

#: Per money request of one buyer: (statements, transactions among them, Redis reads, gateway
#: calls). Totals 55, 11, 21, 5: the statements are bench/query_budgets.py's per route (start
#: 12, pay 15, offer page 13, accept 15), the transactions the server's log (11 BEGINs a buyer),
#: the Redis round trips `redis-cli MONITOR` (21 a buyer, pipelines counted once), the gateway
#: calls the stub's count (5 a buyer). Pay's answer sends the buyer straight to the offer page;
#: until then a redirect at /o/<token>/next came between them (8 statements, 3 Redis reads).
#: Pay calls the gateway twice (the setup with its card, the charge); it made 4 calls before.
ROUTES = {
    "start": (12, 2, 5, 2),
    "pay": (15, 4, 6, 2),
    "offer": (13, 1, 4, 0),
    "accept": (15, 4, 6, 1),
}
_LIMIT = 100


def _select(cursor, i: int) -> None:
    cursor.execute("SELECT %s", [i])
    cursor.fetchone()


def skeleton(request, statements: int, transactions: int, redis: int, gateway: int):
    """`statements` statements, two in each of `transactions` transactions and the rest alone,
    `redis` cache reads and `gateway` customer creations at the stub."""
    from payments.gateway import get_gateway

    statements, redis, gateway = (min(v, _LIMIT) for v in (statements, redis, gateway))
    transactions = min(transactions, statements // 2)
    with connection.cursor() as cursor:
        for t in range(transactions):
            with transaction.atomic():
                _select(cursor, 2 * t)
                _select(cursor, 2 * t + 1)
        for i in range(2 * transactions, statements):
            _select(cursor, i)
    for i in range(redis):
        cache.get(f"bench:skeleton:{i}")
    if gateway:
        client = get_gateway()
        for _ in range(gateway):
            client.customer_create(email="skeleton@bench.invalid", idempotency_key=uuid.uuid4().hex)
    return HttpResponse(b"ok", content_type="text/plain")


def skeleton_buyer(client, catalog: dict) -> None:
    """One buyer: the real kept pages, then the four skeleton requests."""
    client.request("product_page", "GET", f"/p/{catalog['core']}/")
    client.request("checkout_page", "GET", f"/checkout/{catalog['core']}/")
    for name, (s, t, r, g) in ROUTES.items():
        path = f"/bench/skeleton/{s}/{t}/{r}/{g}/"
        status, _, _ = client.request(f"skeleton_{name}", "GET", path)
        if status != 200:
            raise RuntimeError(f"skeleton {name} answered {status}")
