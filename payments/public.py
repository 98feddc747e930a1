"""The public shapes of a store's payout account and its transfers, and their notices.

The partner API (`payments/api/`) and the outbound webhooks `account.updated` and
`transfer.created` share these shapes, so a webhook's payload is what the API answers for the
same object. Notices go through `analytics.services.notice_publish` (partners turns them into
webhooks; payments never imports partners), each with a key naming the change: the webhook's
event id is derived from it, so one change is delivered once per subscription.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from analytics.services import notice_publish
from payments.models import PayoutAccount, TransferAttempt

ACCOUNT_UPDATED = "account.updated"
TRANSFER_CREATED = "transfer.created"

# What the gateway's re-read can change (and the API shows): a change in any is an update.
ACCOUNT_STATE_FIELDS = (
    "charges_enabled",
    "payouts_enabled",
    "details_submitted",
    "requirements_due",
    "disabled_reason",
)


def _iso(value: dt.datetime) -> str:
    """As the API's date-times are rendered: ISO 8601 in UTC, with "Z"."""
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def account_state(account: PayoutAccount | None) -> dict[str, Any]:
    """The store's payout state; no identifiers, keys or links (an onboarding link is a
    credential for the account)."""
    if account is None:
        return {
            "connected": False,
            "charges_enabled": False,
            "payouts_enabled": False,
            "details_submitted": False,
            "requirements_due": [],
            "disabled_reason": "",
            "updated_at": None,
        }
    return {
        "connected": bool(account.account_ref),
        "charges_enabled": account.charges_enabled,
        "payouts_enabled": account.payouts_enabled,
        "details_submitted": account.details_submitted,
        "requirements_due": [str(item) for item in account.requirements_due or []],
        "disabled_reason": account.disabled_reason,
        "updated_at": _iso(account.synced_at) if account.synced_at else None,
    }


def transfer_public(row: TransferAttempt) -> dict[str, Any]:
    return {
        "id": row.pk,
        "reference": row.charge_attempt.reference,
        "charge_ref": row.source_charge_ref,
        "gross": row.gross,
        "fee": row.fee,
        "amount": row.amount,
        "currency": row.currency,
        "status": row.status,
        "transfer_ref": row.gateway_ref,
        "created_at": _iso(row.created_at),
    }


def account_updated_notify(*, account: PayoutAccount) -> None:
    """In the transaction that recorded a changed state (its new `synced_at` names the change)."""
    notice_publish(
        ACCOUNT_UPDATED,
        account_state(account),
        key=f"{ACCOUNT_UPDATED}:{account.pk}:{account.synced_at.isoformat()}",
    )


def transfer_created_notify(*, row: TransferAttempt) -> None:
    """In the transaction that recorded the transfer as succeeded (once per transfer)."""
    notice_publish(TRANSFER_CREATED, transfer_public(row), key=f"{TRANSFER_CREATED}:{row.pk}")
