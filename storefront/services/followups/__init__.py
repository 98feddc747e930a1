"""Follow-up cross-sell emails: scheduled when an order is paid, sent at most twice per offer.

Which offer: the creator's cross-sell offer for the core product if there is one, else the
order's upsell offer, reframed for email (a trimmed message: one headline, one benefit, the
price, one button). Steps go out `Offer.followup_delays_hours` after payment (default 24 h
and 72 h).

Delivery semantics. Each (customer, offer, step) is one FollowUpSend row, created when the
order is paid (the database holds the cap). A worker claims a due row with one conditional
UPDATE (SCHEDULED → SENDING) and commits the claim *before* talking to SMTP; a duplicated or
retried task finds nothing to claim and sends nothing. After the SMTP server accepts the
message the row becomes SENT. If the worker dies between the claim and that UPDATE, the row
stays SENDING; the periodic job claims rows SENDING for longer than
FOLLOWUP_CLAIM_STALE_MINUTES (default 15) again and sends them. So email is
**at-least-once**: a crash in the milliseconds after SMTP accepted the message and before the
UPDATE committed would send it twice. We chose that over at-most-once (never retrying a
claim) because a killed worker would otherwise silently lose the email; the message carries
a stable Message-ID (`<followup-<schema>-<row id>@…>`) so a receiving server or client can
collapse such a duplicate. Everything short of that window sends exactly once.

The package: `schedule` (which offer, when), `send` (eligibility, links, the claimed send,
unsubscribing), `accept` (the email's offer page, the one-click charge and its outcome),
`common` (what they share), and `recovery` (abandoned-checkout reminders: a second sequence
through the same rows, sending and cap; imported from its module). Every other public name
is importable from here, as before the split.
"""

from core.mailerrors import UndeliverableEmail
from storefront.services.followups.accept import (
    FollowUpOffer,
    followup_accept,
    followup_offer_view,
    on_cross_sell_outcome,
)
from storefront.services.followups.common import ACCEPT_MAX_AGE, FollowUpRefused
from storefront.services.followups.schedule import (
    DEFAULT_DELAYS_HOURS,
    MAX_STEPS,
    followup_delays,
    followup_offer_for,
    followups_schedule,
)
from storefront.services.followups.send import (
    LOOP_FOLLOWUPS,
    Framing,
    accept_token,
    claim_stale_after,
    customer_unsubscribe,
    followup_send,
    followups_due,
    followups_send_due,
    skip_reason,
    unsubscribe_token,
)

__all__ = [
    "ACCEPT_MAX_AGE",
    "DEFAULT_DELAYS_HOURS",
    "LOOP_FOLLOWUPS",
    "MAX_STEPS",
    "FollowUpOffer",
    "FollowUpRefused",
    "Framing",
    "UndeliverableEmail",
    "accept_token",
    "claim_stale_after",
    "customer_unsubscribe",
    "followup_accept",
    "followup_delays",
    "followup_offer_for",
    "followup_offer_view",
    "followup_send",
    "followups_due",
    "followups_schedule",
    "followups_send_due",
    "on_cross_sell_outcome",
    "skip_reason",
    "unsubscribe_token",
]
