"""What the post-purchase offer modules share: the decision tokens, the offer's stages, the
primary payment's states, and handing a failed offer to the follow-up email."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.utils import timezone

from analytics.models import EventName
from analytics.services import event_append
from offers.models import OfferDecision, OfferKind
from payments.models import AttemptStatus, ChargeAttempt
from storefront.models import Order
from storefront.selectors import order_primary_attempt
from storefront.services.errors import BuyerRefused
from storefront.services.orders import event_fields_for

_SALT = "storefront.upsell"
POST_PURCHASE = (OfferKind.UPSELL, OfferKind.DOWNSELL)
# The primary payment has been sent and may still settle: the offer may be shown and accepted,
# but its charge waits behind the gate.
_PRIMARY_OPEN = (AttemptStatus.IN_FLIGHT, AttemptStatus.PROCESSING)
_PRIMARY_FAILED = (AttemptStatus.DECLINED, AttemptStatus.CANCELED)


def token_max_age() -> int:
    """Seconds an offer's accept/decline token stays valid (UPSELL_TOKEN_MAX_AGE_SECONDS)."""
    return int(getattr(settings, "UPSELL_TOKEN_MAX_AGE_SECONDS", 30 * 60))


class OfferRefused(BuyerRefused):
    """A refused accept/decline/confirm, with an HTTP status and a message for the buyer."""


@dataclass(frozen=True)
class OfferStep:
    """Where the buyer stands after checkout.

    stage: "offer" (show `decision` with `token`), "queued" (accepted, waiting for the primary
    payment), "charging", "requires_action" (confirm with `client_secret` on-session),
    "charged", or "closed" (nothing more to offer; `message` says why, if anything).
    """

    stage: str
    order: Order
    decision: OfferDecision | None = None
    token: str = ""
    client_secret: str = ""
    message: str = ""


# --- tokens ------------------------------------------------------------------------------------


def offer_token(*, decision: OfferDecision, schema: str) -> str:
    # The schema, order and offer are signed in: a token from another store, order or offer
    # is refused before any row is touched. The nonce makes it name exactly one decision row.
    return signing.dumps(
        {"s": schema, "o": decision.order_id, "f": decision.offer_id, "n": decision.nonce},
        salt=_SALT,
    )


def _token_load(*, signed: str, schema: str, order: Order) -> dict:
    try:
        data = signing.loads(signed or "", salt=_SALT, max_age=token_max_age())
    except signing.SignatureExpired as exc:
        raise OfferRefused(
            410,
            "This offer has expired",
            "The offer was open for a limited time. Nothing was charged.",
        ) from exc
    except signing.BadSignature as exc:
        raise OfferRefused(
            403,
            "This offer link is not valid",
            "We could not verify this offer. Nothing was charged.",
        ) from exc
    if not isinstance(data, dict) or data.get("s") != schema or data.get("o") != order.pk:
        raise OfferRefused(
            403,
            "This offer is for another order",
            "This offer does not belong to this order. Nothing was charged.",
        )
    return data


def _primary_attempt(order: Order) -> ChargeAttempt | None:
    return order_primary_attempt(order_id=order.pk)


def _flag_for_followup(decision: OfferDecision, *, reason: str) -> bool:
    """Hand the offer to the follow-up email (once) and log why it failed here."""
    flagged = OfferDecision.objects.filter(pk=decision.pk, followup_flagged_at__isnull=True).update(
        followup_flagged_at=timezone.now(), followup_reason=reason[:100]
    )
    if flagged:
        event_append(
            EventName.UPSELL_FAILED,
            offer_id=decision.offer_id,
            reason=reason[:100],
            product_id=decision.offer.product_id,
            properties={"kind": decision.kind},
            **event_fields_for(decision.order),
        )
    return bool(flagged)
