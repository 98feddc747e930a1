"""Post-purchase offers: one-click upsell then downsell, behind the settlement gate, charged once.

The buyer sees one offer right after paying. Its decision row (offers.OfferDecision) is the
single-use token: a signed, time-limited token names the row, and accepting moves it out of
PRESENTED with one conditional UPDATE. Accepting commits a ChargeAttempt (off-session, the
vaulted card, the price and tax the buyer saw) and only then, outside any transaction, charges
it — if and only if the primary payment has succeeded. Otherwise the attempt waits as CREATED
and `release_gated_offers` (a task enqueued when the primary settles or fails) sends or cancels
it; `gates_release_stale` (periodic) does the same for an order whose message was lost.
payments.services makes sure an attempt reaches the gateway at most once.

The package: `present` (which offer, its decision row, the page's stage), `decide` (accept,
decline, confirm, abandon, the abandoned-confirmation sweep), `gate` (the settlement gate and
the charges' outcomes), and `common` (tokens, stages, what they share). Every public name is
importable from here, as before the split.
"""

from storefront.services.upsell.common import (
    POST_PURCHASE,
    OfferRefused,
    OfferStep,
    offer_token,
    token_max_age,
)
from storefront.services.upsell.decide import (
    LOOP_ABANDONED,
    offer_abandon_confirmation,
    offer_accept,
    offer_confirm,
    offer_decline,
    offers_flag_abandoned,
)
from storefront.services.upsell.gate import (
    LOOP_GATE_SWEEP,
    LOOP_RELEASE,
    gates_release_stale,
    on_post_purchase_outcome,
    release_gated_offers,
)
from storefront.services.upsell.present import next_step_url, offer_step

__all__ = [
    "LOOP_ABANDONED",
    "LOOP_GATE_SWEEP",
    "LOOP_RELEASE",
    "POST_PURCHASE",
    "OfferRefused",
    "OfferStep",
    "gates_release_stale",
    "next_step_url",
    "offer_abandon_confirmation",
    "offer_accept",
    "offer_confirm",
    "offer_decline",
    "offer_step",
    "offer_token",
    "offers_flag_abandoned",
    "on_post_purchase_outcome",
    "release_gated_offers",
    "token_max_age",
]
