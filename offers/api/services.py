"""Partner API writes to offers and experiments, each with its audit row.

Offers decide what buyers are shown and charged, and an experiment changes it for some of
them, so every change made with an API key is recorded (audit.services) in the transaction
that makes it. Pausing, resuming, starting and stopping are audited by the services
themselves (offers.services, offers.experiments), which the views call directly.
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
from offers.models import Offer


def offer_create(*, actor: Actor, data: dict[str, Any]) -> Offer:
    data = dict(data)
    # Priced like its core product unless said otherwise (the serializer refuses another).
    data.setdefault("currency", data["trigger_product"].currency)
    return audited_create(
        model=Offer,
        actor=actor,
        data=data,
        action="offers.offer.add",
        summary="Added {obj} through the API",
    )


def offer_update(*, actor: Actor, offer: Offer, data: dict[str, Any]) -> Offer:
    return audited_update(
        obj=offer,
        actor=actor,
        data=data,
        action="offers.offer.change",
        summary="Changed {obj} through the API",
    )


def offer_delete(*, actor: Actor, offer: Offer) -> None:
    with transaction.atomic():
        audit_record(
            request_or_actor=actor,
            action="offers.offer.delete",
            obj=offer,
            changes=audit_diff(model_snapshot(offer), {}),
            summary=f"Deleted {offer} through the API",
        )
        offer.delete()


def experiment_create(*, actor: Actor, data: dict[str, Any]) -> Experiment:
    return audited_create(
        model=Experiment,
        actor=actor,
        data=data,
        action="analytics.experiment.add",
        summary="Added experiment “{obj}” through the API",
    )
