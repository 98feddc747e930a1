"""Guardrails: pause an offer whose refunds or chargebacks spike against its own baseline.

Lives in offers (it pauses offers through `offer_pause`) and reads the figures from the
analytics selectors below it; analytics itself never imports offers.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal

from django.apps import apps
from django.core.mail import send_mail
from django.db import connection, transaction
from django.utils import timezone

from analytics.models import EventName
from analytics.selectors import offer_risk_window, rate
from analytics.services import event_append
from audit.services import Actor
from core.loops import each_record
from core.tasks import tenant_task
from offers.models import Offer
from offers.services import offer_pause

logger = logging.getLogger(__name__)

# Whose name a guardrail pause is recorded under in the creator's audit trail.
GUARDRAILS_ACTOR = Actor.system("offers.guardrails")


@dataclass(frozen=True)
class GuardrailPolicy:
    window_days: int = 7  # the recent window
    baseline_days: int = 90  # before the window: what this offer normally looks like
    min_sold: int = 20  # fewer lines than this in the window is too little to judge
    refund_ratio: Decimal = Decimal("2")  # recent refund rate ≥ 2 × baseline …
    refund_floor: Decimal = Decimal("0.10")  # … and ≥ 10 % (a 1 % → 2 % move is noise)
    chargeback_limit: int = 3  # chargebacks in the window, and above the baseline's pace


@dataclass(frozen=True)
class Breach:
    offer_id: int
    code: str  # "refund_spike" or "chargebacks"
    reason: str  # the sentence the creator sees on the offer


def guardrail_breaches(
    *, policy: GuardrailPolicy = GuardrailPolicy(), now: dt.datetime | None = None
) -> list[Breach]:
    now = now or timezone.now()
    window_start = now - dt.timedelta(days=policy.window_days)
    baseline_start = window_start - dt.timedelta(days=policy.baseline_days)
    breaches = []
    for row in offer_risk_window(window_start=window_start, baseline_start=baseline_start, now=now):
        recent = rate(row["recent_refunds"], row["recent_sold"])
        base = rate(row["base_refunds"], row["base_sold"]) or Decimal(0)
        if (
            row["recent_sold"] >= policy.min_sold
            and recent is not None
            and recent >= max(policy.refund_floor, policy.refund_ratio * base)
        ):
            breaches.append(
                Breach(
                    row["offer_id"],
                    "refund_spike",
                    (
                        f"Paused automatically: {recent * 100:.1f}% of this offer's sales were "
                        "refunded "
                        f"in the last {policy.window_days} days ({row['recent_refunds']} of "
                        f"{row['recent_sold']}), against {base * 100:.1f}% over the "
                        f"{policy.baseline_days} days before."
                    ),
                )
            )
            continue
        # The baseline's chargebacks scaled to the window's length: the usual pace.
        pace = Decimal(row["base_chargebacks"]) * policy.window_days / policy.baseline_days
        if (
            row["recent_chargebacks"] >= policy.chargeback_limit
            and row["recent_chargebacks"] > 2 * pace
        ):
            breaches.append(
                Breach(
                    row["offer_id"],
                    "chargebacks",
                    (
                        f"Paused automatically: {row['recent_chargebacks']} chargebacks in the "
                        "last "
                        f"{policy.window_days} days, against about {pace:.1f} usually."
                    ),
                )
            )
    return breaches


LOOP_GUARDRAILS = "offers.guardrails"


def offer_guardrails_enforce(
    *, policy: GuardrailPolicy = GuardrailPolicy(), now: dt.datetime | None = None
) -> list[int]:
    """Pause every active offer in breach; append `offer_paused` and tell the creator.
    Safe to run twice: a paused offer is not paused again (offer_pause is conditional)."""

    def enforce(breach: Breach) -> int | None:
        offer = Offer.objects.filter(pk=breach.offer_id, status=Offer.Status.ACTIVE).first()
        if offer is None:
            return None
        with transaction.atomic():
            if not offer_pause(actor=GUARDRAILS_ACTOR, offer=offer, reason=breach.reason):
                return None
            event_append(
                EventName.OFFER_PAUSED,
                offer_id=offer.pk,
                product_id=offer.product_id,
                reason=breach.code,
                properties={"message": breach.reason},
            )
            transaction.on_commit(lambda o=offer, b=breach: _notify_creator(o, b))
        return offer.pk

    # One offer that cannot be paused must not leave the others in breach running.
    run = each_record(
        LOOP_GUARDRAILS,
        guardrail_breaches(policy=policy, now=now),
        enforce,
        key=lambda b: b.offer_id,
        label=lambda b: f"pausing offer {b.offer_id}",
    )
    return [pk for pk in run.results if pk is not None]


def _creator_address() -> str:
    # storefront sits above offers: reach its settings through the app registry, no import.
    settings_row = apps.get_model("storefront", "StoreSettings").objects.filter(pk=1).first()
    address = settings_row.support_email if settings_row else ""
    if address:
        return address
    tenant = getattr(connection, "tenant", None)
    return getattr(tenant, "owner_email", "")


def _notify_creator(offer: Offer, breach: Breach) -> None:
    address = _creator_address()
    if not address:
        logger.warning("guardrail paused offer %s but the store has no address", offer.pk)
        return
    send_mail(
        subject=f"We paused your offer “{offer.headline}”",
        message=f"{breach.reason}\n\nLook at its refunds and wording, then resume it from the "
        "offers page when you are ready.",
        from_email=None,
        recipient_list=[address],
        fail_silently=True,
    )


@tenant_task(name="offers.guardrails_enforce")
def guardrails_enforce_task() -> list[int]:
    """Periodic, per tenant (beat → core.tasks.fan_out("offers.guardrails_enforce"))."""
    return offer_guardrails_enforce()
