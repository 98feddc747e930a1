"""Partner API writes to offers and experiments, each with its audit row.

Offers decide what buyers are shown and charged, and an experiment changes it for some of
them, so every change made with an API key is recorded (audit.services) in the transaction
that makes it. The rules themselves stay in offers.services and offers.experiments.
"""
from __future__ import annotations

from typing import Any

from django.db import transaction

from analytics.models import Experiment
from audit.services import (
    Actor,
    audit_diff,
    audit_record,
    audited_create,
    audited_update,
    model_snapshot,
)
from offers.experiments import experiment_start, experiment_stop
from offers.models import Offer
from offers.services import offer_pause, offer_resume


def offer_create(*, actor: Actor, data: dict[str, Any]) -> Offer:
    data = dict(data)
    # Priced like its core product unless said otherwise (the serializer refuses another).
    data.setdefault("currency", data["trigger_product"].currency)
    return audited_create(model=Offer, actor=actor, data=data, action="offers.offer.add",
                          summary="Added {obj} through the API")


def offer_update(*, actor: Actor, offer: Offer, data: dict[str, Any]) -> Offer:
    return audited_update(obj=offer, actor=actor, data=data, action="offers.offer.change",
                          summary="Changed {obj} through the API")


def offer_delete(*, actor: Actor, offer: Offer) -> None:
    with transaction.atomic():
        audit_record(
            request_or_actor=actor, action="offers.offer.delete", obj=offer,
            changes=audit_diff(model_snapshot(offer), {}),
            summary=f"Deleted {offer} through the API",
        )
        offer.delete()


def offer_pause_by(*, actor: Actor, offer: Offer, reason: str) -> bool:
    with transaction.atomic():
        paused = offer_pause(offer=offer, reason=reason)
        if paused:
            audit_record(
                request_or_actor=actor, action="offers.offer.pause", obj=offer,
                changes={"status": [Offer.Status.ACTIVE, Offer.Status.PAUSED],
                         "paused_reason": reason},
                summary=f"Paused {offer} through the API",
            )
    return paused


def offer_resume_by(*, actor: Actor, offer: Offer) -> bool:
    with transaction.atomic():
        resumed = offer_resume(offer=offer)
        if resumed:
            audit_record(
                request_or_actor=actor, action="offers.offer.resume", obj=offer,
                changes={"status": [Offer.Status.PAUSED, Offer.Status.ACTIVE]},
                summary=f"Resumed {offer} through the API",
            )
    return resumed


def experiment_create(*, actor: Actor, data: dict[str, Any]) -> Experiment:
    return audited_create(model=Experiment, actor=actor, data=data,
                          action="analytics.experiment.add",
                          summary="Added experiment “{obj}” through the API")


def experiment_start_by(*, actor: Actor, experiment: Experiment, planned_per_arm: int) -> bool:
    """Draft → running. The sample size it was started with is kept in the audit row."""
    with transaction.atomic():
        started = experiment_start(experiment=experiment)
        if started:
            audit_record(
                request_or_actor=actor, action="analytics.experiment.start", obj=experiment,
                changes={"status": ["draft", "running"], "planned_per_arm": planned_per_arm},
                summary=f"Started experiment “{experiment}” through the API",
            )
    return started


def experiment_stop_by(*, actor: Actor, experiment: Experiment) -> bool:
    with transaction.atomic():
        stopped = experiment_stop(experiment=experiment)
        if stopped:
            audit_record(
                request_or_actor=actor, action="analytics.experiment.stop", obj=experiment,
                changes={"status": ["running", "stopped"]},
                summary=f"Stopped experiment “{experiment}” through the API",
            )
    return stopped
