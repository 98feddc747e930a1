"""Drill: the gateway slows past our timeout, then refuses connections. Pages that do not need
it keep answering, nothing answers 500, and reconciliation afterwards settles every pending
attempt with exactly one charge each (bench/drills/gateway_faults.py runs it under load)."""

from __future__ import annotations

import datetime as dt

from django.db.models import Sum

from payments.models import AttemptStatus, ChargeAttempt, LedgerEntry
from payments.reconciliation import reconcile_run
from storefront.models import OrderStatus
from tests.drills.conftest import BUMP, CORE, UPSELL, accept, catalog, offer_token, pay, start


def test_a_slow_then_refusing_gateway_gives_no_500s_and_reconciliation_charges_each_attempt_once(
    tenant, stub, client_for
):
    core, bump, _, _ = catalog()
    client = client_for("t1.localhost")
    statuses: list[tuple[str, int]] = []

    def page(name: str, response) -> None:
        statuses.append((name, response.status_code))

    # Healthy: one buyer pays and reaches the one-click offer.
    response, settled = start(client, bump, 1)
    page("start", response)
    page("pay", pay(client, settled))
    settled.refresh_from_db()
    assert settled.status == OrderStatus.PAID

    # Slow: the charge takes 2 s, our timeout is 1 s. The charge happens at the gateway,
    # the answer never reaches us: the attempt stays IN_FLIGHT and the buyer sees "processing".
    response, slow = start(client, bump, 2)
    page("start", response)
    stub.charge_delay = 2.0
    response = pay(client, slow)
    page("pay", response)
    assert response.status_code == 202 and response.json()["status"] == "processing"
    stub.charge_delay = 0.0
    # The offer is shown while the primary is in flight; accepting queues it behind the gate.
    status, token = offer_token(client, slow)
    assert status == 200 and token
    page("accept", accept(client, slow, token))

    # Refusing connections: checkout cannot start or pay; the offer accepted now for the
    # paid order goes out with an unknown outcome. None of it is a 500.
    response, pending = start(client, bump, 3)  # started before the outage
    page("start", response)
    status, token = offer_token(client, settled)
    assert status == 200 and token
    stub.refuse()
    try:
        response = pay(client, pending)
        page("pay (gateway down)", response)
        assert response.status_code == 400 and "unavailable" in response.json()["error"]
        response, nothing = start(client, bump, 4)
        page("start (gateway down)", response)
        assert response.status_code == 400 and nothing is None
        page("accept (gateway down)", accept(client, settled, token))
        for path in (
            "/",
            f"/p/{core.slug}/",
            f"/checkout/{core.slug}/",
            f"/o/{settled.token}/thanks",
            f"/o/{settled.token}/offer",
            f"/o/{slow.token}/offer/status",
        ):
            response = client.get(path)
            page(path, response)
            assert response.status_code == 200, (path, response.status_code)
        assert reconcile_run(in_flight_grace=dt.timedelta(0)).gateway_down
    finally:
        stub.accept()

    assert [s for s in statuses if s[1] >= 500] == []
    upsell_of_settled = ChargeAttempt.objects.get(purpose=f"order:{settled.pk}:upsell")
    assert upsell_of_settled.status == AttemptStatus.IN_FLIGHT  # never reached the gateway

    report = reconcile_run(in_flight_grace=dt.timedelta(0), resend_after=dt.timedelta(0))
    assert not report.gateway_down and report.errors == []
    # The slow order's primary settled; its queued upsell is released as the task would.
    from storefront.services.upsell import release_gated_offers

    release_gated_offers(order_id=slow.pk)

    open_attempts = ChargeAttempt.objects.exclude(
        status__in=[AttemptStatus.SUCCEEDED, AttemptStatus.DECLINED, AttemptStatus.CANCELED]
    )
    assert list(open_attempts.values_list("purpose", "status")) == []
    for order in (settled, slow):
        order.refresh_from_db()
        assert order.status == OrderStatus.PAID
        charged = LedgerEntry.objects.filter(reference=order.reference, kind="charge")
        assert charged.aggregate(t=Sum("amount"))["t"] == CORE + BUMP + UPSELL
    pending.refresh_from_db()
    assert pending.status == OrderStatus.PENDING  # never paid: the buyer can try again
    stats = stub.stats()
    assert stats["attempt_keys_charged_twice"] == 0
    assert (
        stats["payment_intents"]
        == ChargeAttempt.objects.filter(status=AttemptStatus.SUCCEEDED).count()
        == 4
    )
    ours = LedgerEntry.objects.filter(kind="charge").aggregate(t=Sum("amount"))["t"]
    assert ours == sum(i["amount"] for i in stub.state.intents.values())
