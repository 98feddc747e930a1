"""Post-purchase offers (one-click upsell and downsell). Placeholder until issue 4 lands:
the checkout registers outcomes for purposes other than 'primary' here."""
from __future__ import annotations

from payments.models import ChargeAttempt
from storefront.models import Order


def on_post_purchase_outcome(*, order: Order, attempt: ChargeAttempt, what: str) -> None:
    raise NotImplementedError(f"post-purchase purpose {what!r} is not handled yet")


def release_gated_offers(*, order_id: int) -> None:
    """Charge or cancel acceptances queued behind the settlement gate (issue 4)."""
    return None


def next_step_url(*, order: Order) -> str | None:
    """The post-purchase offer page for this order, or None to go straight to thanks."""
    return None
