"""Payouts through Stripe Connect: each store's connected account, onboarding and its state.

- `payout_account_connect` makes the store's Express account once (its row and idempotency key
  are committed before the gateway call, so a crash between the two gets the same account back
  on the next click) and returns a fresh onboarding link: a link is single-use and expires in
  minutes at Stripe, so every click of "Connect payouts" makes a new one.
- The account's state (charges/payouts enabled, details submitted, requirements due) is only
  written from a fresh read of the account (`payout_account_sync`): on the creator's return from
  onboarding, and for every `account.updated` the platform's Connect endpoint receives
  (`connect_event_receive`, routed to the store by the account id on its Creator row).
- `payments_block_reason` is what the store's pages and checkout ask before any gateway call: a
  store whose owner has not verified their email, or (for a self-serve store) whose account
  cannot take charges, is "not accepting payments yet".

Nothing here runs a gateway call inside an open transaction.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context, tenant_context

from core.fixedsql import FixedQuery
from payments.gateway import ConnectedAccount, get_gateway
from payments.models import PayoutAccount
from payments.public import ACCOUNT_STATE_FIELDS, account_state, account_updated_notify

logger = logging.getLogger(__name__)

NOT_ACCEPTING = "This store is not accepting payments yet."


class ConnectEventRejected(ValueError):
    """Not a genuine Connect event (bad signature, not an event)."""


# --- selectors -----------------------------------------------------------------------------


def payout_account_current() -> PayoutAccount | None:
    """The store's connected account row (in the current schema), if it has one."""
    return _PAYOUT_ACCOUNT.first()


_PAYOUT_ACCOUNT = FixedQuery(PayoutAccount, lambda: PayoutAccount.objects.order_by("pk"))


def payments_block_reason(*, creator=None) -> str | None:
    """Why the current store cannot take a payment now, for buyers; None if it can.

    Reads the store's row as routing gave it (`connection.tenant`): no query for a store that
    needs no connected account. The routing cache is dropped on every change to a creator
    (tenants.routing), and verification drops it explicitly (tenants.signup), so the row is
    never older than the last change.
    """
    creator = creator if creator is not None else getattr(connection, "tenant", None)
    if creator is None or getattr(creator, "pk", None) is None:
        return None
    if not hasattr(creator, "email_verified_at"):
        return None  # not a store (e.g. django-tenants' FakeTenant in a management command)
    if creator.email_verified_at is None:
        return NOT_ACCEPTING
    if getattr(creator, "payouts_required", False):
        account = payout_account_current()
        if account is None or not account.charges_enabled:
            return NOT_ACCEPTING
    return None


# --- services --------------------------------------------------------------------------------


def payout_account_connect(*, refresh_url: str, return_url: str) -> str:
    """The onboarding link for this store's connected account, making the account if needed."""
    creator = connection.tenant
    account = payout_account_current()
    if account is None:
        with transaction.atomic():
            account, _ = PayoutAccount.objects.get_or_create(
                idempotency_key=f"connect-account:{creator.schema_name}:{creator.pk}"
            )
    if not account.account_ref:
        made = get_gateway().connected_account_create(
            email=creator.owner_email,
            country=getattr(settings, "CONNECT_DEFAULT_COUNTRY", "US"),
            idempotency_key=account.idempotency_key,
            metadata={"store": creator.slug},
        )
        _record(account, made)
        _route_to_store(creator, made.account_ref)
    return get_gateway().connected_account_link(
        account_ref=account.account_ref, refresh_url=refresh_url, return_url=return_url
    )


def _route_to_store(creator, account_ref: str) -> None:
    from tenants.models import Creator

    with schema_context(get_public_schema_name()):
        Creator.objects.filter(pk=creator.pk).update(payout_account_ref=account_ref)


def _record(account: PayoutAccount, state: ConnectedAccount) -> PayoutAccount:
    with transaction.atomic():
        locked = PayoutAccount.objects.select_for_update().get(pk=account.pk)
        if locked.account_ref and locked.account_ref != state.account_ref:
            raise ValueError(
                f"the store's account is {locked.account_ref}, not {state.account_ref}"
            )
        before = account_state(locked)
        locked.account_ref = state.account_ref
        locked.charges_enabled = state.charges_enabled
        locked.payouts_enabled = state.payouts_enabled
        locked.details_submitted = state.details_submitted
        locked.requirements_due = list(state.requirements_due)
        locked.disabled_reason = state.disabled_reason[:100]
        locked.synced_at = timezone.now()
        locked.save()
        after = account_state(locked)
        if any(before[name] != after[name] for name in ACCOUNT_STATE_FIELDS):
            account_updated_notify(account=locked)  # once per change: we hold the row's lock
    account.refresh_from_db()
    return account


def payout_account_sync() -> PayoutAccount | None:
    """Re-read the store's connected account from the gateway and record its state."""
    account = payout_account_current()
    if account is None or not account.account_ref:
        return account
    return _record(account, get_gateway().connected_account_retrieve(account.account_ref))


def connect_event_receive(*, payload: bytes, signature: str) -> str | None:
    """A Connect webhook on the platform's domain: verify, find the store by the account id,
    re-read the account there. Returns the store's slug, or None for an account we do not know
    (answered 200 so the gateway stops retrying: no store will ever claim it)."""
    from tenants.models import Creator

    secret = (
        getattr(settings, "STRIPE_CONNECT_WEBHOOK_SECRET", "") or settings.STRIPE_WEBHOOK_SECRET
    )
    try:
        event = get_gateway().event_parse(payload=payload, signature=signature, secret=secret)
    except ValueError as exc:
        raise ConnectEventRejected(str(exc)) from exc
    account_ref = event.account_ref or (event.object_id if event.object_type == "account" else "")
    if not account_ref:
        return None
    with schema_context(get_public_schema_name()):
        creator = (
            Creator.objects.exclude(schema_name=get_public_schema_name())
            .filter(payout_account_ref=account_ref)
            .first()
        )
    if creator is None:
        logger.info("connect: %s for unknown account %s", event.event_type, account_ref)
        return None
    with tenant_context(creator):
        account = PayoutAccount.objects.filter(account_ref=account_ref).first()
        if account is not None:
            _record(account, get_gateway().connected_account_retrieve(account_ref))
    return creator.slug
