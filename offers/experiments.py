"""Experiment assignment: which arm a buyer is in, deterministic and sticky.

The Experiment and Assignment models live in analytics (the read side measures them); offers
sits above analytics in the layering, so importing them here is allowed.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from analytics.models import CONTROL_ARM, Assignment, Experiment, ExperimentStatus
from audit.services import Actor, audit_record
from core.fixedsql import FixedQuery
from core.identity import email_key
from offers.models import Offer


def experiment_arm_for(*, experiment: Experiment, visitor_key: str) -> str:
    """The arm a key hashes to: same experiment + same key → same arm, on every machine.

    SHA-256 of "<experiment id>:<key>", first 8 bytes as an integer, modulo the arm count.
    Arms are sorted (control first when there is one) so the mapping does not depend on JSON
    key order."""
    arms = experiment.arms
    digest = hashlib.sha256(f"{experiment.pk}:{visitor_key}".encode()).digest()
    return arms[int.from_bytes(digest[:8], "big") % len(arms)]


def experiment_assign(*, experiment: Experiment, visitor_key: str) -> str:
    """Record (once) and return the visitor's arm. The first row wins: a later change to the
    arms, or a concurrent request for the same visitor, never moves a buyer to another arm."""
    if not visitor_key:
        raise ValueError("an assignment needs a visitor or customer key")
    visitor_key = visitor_key[:64]
    arm = experiment_arm_for(experiment=experiment, visitor_key=visitor_key)
    with transaction.atomic():
        # INSERT … ON CONFLICT DO NOTHING: the unique constraint decides races.
        Assignment.objects.bulk_create(
            [
                Assignment(
                    experiment=experiment,
                    visitor_key=visitor_key,
                    variant=arm,
                    assigned_at=timezone.now(),
                )
            ],
            ignore_conflicts=True,
        )
        return Assignment.objects.values_list("variant", flat=True).get(
            experiment=experiment, visitor_key=visitor_key
        )


@dataclass(frozen=True)
class OfferPresentation:
    """What to show: None offer means the buyer is in the no-offer control."""

    offer: Offer | None
    variant: str  # "" when no experiment runs
    overrides: dict[str, Any]  # the fields this arm changes (headline, price_amount, …)


_RUNNING = FixedQuery(
    Experiment,
    lambda offer_id: Experiment.objects.filter(offer_id=offer_id, status=ExperimentStatus.RUNNING),
)


def offer_present(*, offer: Offer, visitor_key: str) -> OfferPresentation:
    """The offer as this visitor should see it under the running experiment, if any.

    Control buyers get no offer at all, on every visit (the assignment is stored)."""
    experiment = _RUNNING.first(offer.pk)
    if experiment is None or not visitor_key:
        return OfferPresentation(offer, "", {})
    arm = experiment_assign(experiment=experiment, visitor_key=visitor_key)
    if arm == CONTROL_ARM:
        return OfferPresentation(None, arm, {})
    return OfferPresentation(offer, arm, dict(experiment.variants.get(arm, {})))


# Which Offer attributes an arm's fields change (analytics.models.EXPERIMENT_FIELDS). Framing
# and placement are read by templates from `OfferPresentation.overrides`.
_OFFER_ATTRIBUTES = {"headline": str, "benefit": str, "testimonial": str, "price_amount": int}


def buyer_key(*, visitor_id: str = "", email: str = "") -> str:
    """Whom an assignment belongs to: the attribution cookie's visitor id, else the email."""
    if visitor_id:
        return visitor_id[:64]
    return f"email:{email_key(email)}"[:64] if email_key(email) else ""


def offer_for_buyer(*, offer: Offer | None, visitor_key: str) -> OfferPresentation:
    """`offer_present`, with the arm's fields applied to an unsaved copy of the offer, so the
    page, the quote and the frozen price all read the variant. None offer in, None out."""
    if offer is None:
        return OfferPresentation(None, "", {})
    shown = offer_present(offer=offer, visitor_key=visitor_key)
    if shown.offer is None or not shown.overrides:
        return shown
    varied = copy.copy(offer)
    for name, kind in _OFFER_ATTRIBUTES.items():
        if name in shown.overrides:
            setattr(varied, name, kind(shown.overrides[name]))
    return OfferPresentation(varied, shown.variant, shown.overrides)


def experiment_start(
    *, actor: Actor, experiment: Experiment, planned_per_arm: int | None = None
) -> bool:
    """Draft → running, once, with its audit row; the database allows one running test per
    offer (IntegrityError). The sample size it was started with is kept in the audit row."""
    experiment.full_clean()
    with transaction.atomic():
        started = bool(
            Experiment.objects.filter(pk=experiment.pk, status=ExperimentStatus.DRAFT).update(
                status=ExperimentStatus.RUNNING, started_at=timezone.now()
            )
        )
        if started:
            audit_record(
                request_or_actor=actor,
                action="analytics.experiment.start",
                obj=experiment,
                changes={"status": ["draft", "running"], "planned_per_arm": planned_per_arm},
                summary=f"Started experiment “{experiment}”",
            )
    return started


def experiment_stop(*, actor: Actor, experiment: Experiment) -> bool:
    """Running → stopped, once, with its audit row."""
    with transaction.atomic():
        stopped = bool(
            Experiment.objects.filter(pk=experiment.pk, status=ExperimentStatus.RUNNING).update(
                status=ExperimentStatus.STOPPED, stopped_at=timezone.now()
            )
        )
        if stopped:
            audit_record(
                request_or_actor=actor,
                action="analytics.experiment.stop",
                obj=experiment,
                changes={"status": ["running", "stopped"]},
                summary=f"Stopped experiment “{experiment}”",
            )
    return stopped
