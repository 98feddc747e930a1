"""Reads for the store admin's getting-started checklist: every tick comes from real state.

Here, not in tenants: the checklist reads the store's products, offers and payout account, and
tenants sits below every product app (docs/architecture.md, "Layers")."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse

from offers.models import Offer
from payments.connect import payout_account_current
from storefront.models import Product
from tenants.models import Creator


@dataclass(frozen=True)
class ChecklistItem:
    key: str
    label: str
    done: bool
    hint: str = ""
    url: str = ""  # a link to do it
    post_url: str = ""  # or a button (a POST) to do it


def _url(name: str) -> str:
    try:
        return reverse(name)
    except NoReverseMatch:
        return ""


def onboarding_checklist(*, creator: Creator) -> list[ChecklistItem]:
    """Call inside the store's schema."""
    # Not the routing cache's copy; tenants_creator (public) is on every store's search path.
    fresh = Creator.objects.get(pk=creator.pk)
    account = payout_account_current()
    payouts_done = account is not None and account.charges_enabled
    if account is None:
        payouts_hint = "Connect the account your sales are paid out to."
    elif payouts_done:
        payouts_hint = "Your payouts account can take payments."
    else:
        payouts_hint = "Finish the details your payouts account still needs."
    return [
        ChecklistItem(
            "verify_email",
            "Verify your email",
            fresh.email_verified_at is not None,
            hint=f"We sent a link to {fresh.owner_email}.",
        ),
        ChecklistItem(
            "connect_payouts",
            "Connect payouts",
            payouts_done,
            hint=payouts_hint,
            post_url=_url("store-payouts-connect"),
        ),
        ChecklistItem(
            "add_product",
            "Add your first product",
            Product.objects.exists(),
            url=_url("admin:storefront_product_add"),
        ),
        ChecklistItem(
            "arrange_ladder",
            "Arrange your offer ladder (bump, upsell, downsell)",
            Offer.objects.exists(),
            url=_url("admin:offers_offer_add"),
        ),
        ChecklistItem(
            "preview_store",
            "Preview your store",
            fresh.previewed_at is not None,
            post_url=_url("store-preview"),
        ),
    ]
