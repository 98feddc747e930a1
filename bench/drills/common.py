"""What every load drill does after the fault: settle what is pending the way production
does (reconciliation, the outbox drained, the worker), then count what is lost, duplicated
or inconsistent by comparing our orders, attempts and ledger with the gateway stub."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time

from bench.harness import HOST, Run, say


def signed_event(run: Run, event_id: str, intent_id: str) -> tuple[bytes, str]:
    body = json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": "payment_intent.succeeded",
            "created": int(time.time()),
            "data": {"object": {"id": intent_id, "object": "payment_intent"}},
        }
    ).encode()
    ts = int(time.time())
    sig = hmac.new(
        run.webhook_secret.encode(), f"{ts}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return body, f"t={ts},v1={sig}"


def settle(run: Run, *, timeout: float = 120) -> None:
    """Reconcile (grace 0: the drill is over) and drain the outbox until nothing is pending."""
    from django_tenants.utils import tenant_context

    from core.models import OutboxMessage
    from core.tasks import drain_outbox
    from payments.models import AttemptStatus, ChargeAttempt
    from payments.reconciliation import reconcile_run
    from tenants.models import Creator

    creator = Creator.objects.get(slug="load")
    deadline = time.monotonic() + timeout
    rounds = 0
    while time.monotonic() < deadline:
        rounds += 1
        with tenant_context(creator):
            report = reconcile_run(in_flight_grace=dt.timedelta(0), resend_after=dt.timedelta(0))
            open_ = ChargeAttempt.objects.filter(
                status__in=[AttemptStatus.IN_FLIGHT, AttemptStatus.PROCESSING]
            ).count()
            queued = _queued_behind_settled(ChargeAttempt, AttemptStatus)
        drained = drain_outbox()
        waiting = OutboxMessage.objects.filter(dispatched_at__isnull=True).count()
        if not report.gateway_down and open_ == 0 and queued == 0 and waiting == 0:
            say(f"settled after {rounds} reconciliation round(s)")
            return
        say(
            f"settling: {open_} attempts open, {queued} queued upsells, {waiting} outbox "
            f"rows ({drained} sent now)"
        )
        time.sleep(3)
    say("settling timed out: what is left is counted as lost")


def _queued_behind_settled(ChargeAttempt, AttemptStatus) -> int:
    settled = set(
        ChargeAttempt.objects.filter(
            purpose__endswith=":primary", status=AttemptStatus.SUCCEEDED
        ).values_list("reference", flat=True)
    )
    return ChargeAttempt.objects.filter(status=AttemptStatus.CREATED, reference__in=settled).count()


def audit(run: Run) -> dict:
    """Counts after settling (each should be zero except the totals)."""
    from collections import Counter

    from django.db.models import Sum
    from django_tenants.utils import tenant_context

    from analytics.models import Event
    from core import orderkeys
    from core.models import OutboxMessage
    from offers.models import DecisionStatus, OfferDecision
    from payments.models import AttemptStatus, ChargeAttempt, LedgerEntry
    from storefront.models import FollowUpSend, Order, OrderStatus
    from tenants.models import Creator

    stats = run.stub("GET", "/stats")
    intents = run.stub("GET", "/intents")
    with tenant_context(Creator.objects.get(slug="load")):
        orders = list(Order.objects.all())
        attempts = {a.purpose: a for a in ChargeAttempt.objects.all()}
        paid_statuses = (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED)
        lost = inconsistent = 0
        lost_detail: list[str] = []
        for order in orders:
            primary = attempts.get(orderkeys.order_purpose(order.pk, orderkeys.PRIMARY))
            succeeded = primary is not None and primary.status == AttemptStatus.SUCCEEDED
            if succeeded != (order.status in paid_statuses):
                inconsistent += 1
            if order.status in paid_statuses:
                if FollowUpSend.objects.filter(order=order).count() != 2:
                    lost += 1
                    lost_detail.append(f"order {order.pk}: follow-ups missing")
                lines = sum(order.lines.values_list("total_amount", flat=True))
                ledger = (
                    LedgerEntry.objects.filter(reference=order.reference, kind="charge").aggregate(
                        t=Sum("amount")
                    )["t"]
                    or 0
                )
                if lines != ledger:
                    inconsistent += 1
        for decision in OfferDecision.objects.filter(status=DecisionStatus.ACCEPTED).select_related(
            "attempt", "order"
        ):
            if decision.order.status in paid_statuses and (
                decision.attempt is None or decision.attempt.status != AttemptStatus.SUCCEEDED
            ):
                lost += 1
                lost_detail.append(
                    f"order {decision.order_id}: accepted upsell "
                    f"{decision.attempt.status if decision.attempt else None}"
                )
        still_open = sum(
            1
            for a in attempts.values()
            if a.status in (AttemptStatus.IN_FLIGHT, AttemptStatus.PROCESSING)
        )
        events = Counter(
            Event.objects.filter(name__in=["checkout_completed", "upsell_charged"]).values_list(
                "name", "order_id"
            )
        )
        duplicated_events = sum(1 for n in events.values() if n > 1)
        ours = LedgerEntry.objects.filter(kind="charge").aggregate(t=Sum("amount"))["t"] or 0
        succeeded_attempts = sum(
            1 for a in attempts.values() if a.status == AttemptStatus.SUCCEEDED
        )
    theirs = sum(i["amount"] for i in intents)
    unsent = OutboxMessage.objects.filter(dispatched_at__isnull=True).count()
    return {
        "orders": len(orders),
        "paid": sum(1 for o in orders if o.status in paid_statuses),
        "pending": sum(1 for o in orders if o.status == OrderStatus.PENDING),
        "failed": sum(1 for o in orders if o.status == OrderStatus.FAILED),
        "charges_at_gateway": stats["payment_intents"],
        "succeeded_attempts": succeeded_attempts,
        "lost": lost + unsent,
        "lost_detail": lost_detail[:10],
        "outbox_unsent": unsent,
        "attempts_still_open": still_open,
        "duplicated": stats["attempt_keys_charged_twice"] + duplicated_events,
        "double_charges": stats["attempt_keys_charged_twice"],
        "inconsistent": inconsistent + (ours != theirs) + still_open,
        "ledger_vs_gateway": f"{ours} vs {theirs}",
    }


def report(title: str, injected: str, operations: dict, counts: dict) -> None:
    print(f"\n== {title}")
    print(f"injected:   {injected}")
    print("operations: " + ", ".join(f"{k} {v}" for k, v in operations.items()))
    print(
        f"results:    lost {counts['lost']}, duplicated {counts['duplicated']} "
        f"(double charges {counts['double_charges']}), inconsistent {counts['inconsistent']}"
    )
    print(
        "detail:     "
        + json.dumps(
            {k: v for k, v in counts.items() if k not in ("lost", "duplicated", "inconsistent")}
        )
    )


__all__ = ["HOST", "audit", "report", "settle", "signed_event"]
