"""Protected delivery: whether a line may still be used, short-lived signed download links,
downloads counted per line against the product's limit, and license keys.

Access follows money. A line may be used while its order is paid and the line itself has not
been refunded in full (refunds count from the moment they are reserved, before the gateway
call, and stop counting if the gateway refuses them) and no dispute holds money of it. The
ledger records a chargeback when a dispute's funds are withdrawn (Stripe does so when it
opens): access is suspended then; a won dispute's reinstatement cancels the chargeback and
access comes back; a lost one keeps it, so access has ended (payments.disputes). Nothing
here is a flag someone sets: it is read from the order, the refunds and the ledger on every
check, so a refund made through the admin, the API or at the gateway (reconciliation) ends
access the same way.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils import timezone

from core.boundary import db_id
from payments.models import LedgerKind, Refund, RefundStatus
from payments.services import ledger_line_totals
from storefront.models import (
    OWNED_ORDER_STATUSES,
    LineAccess,
    Order,
    OrderLine,
    OrderStatus,
)


class LineState:
    """Why a line can or cannot be used (shown to the buyer, returned to partners)."""

    ACTIVE = "active"
    UNPAID = "unpaid"
    REFUNDED = "refunded"
    DISPUTED = "disputed"


def line_states(*, order: Order, lines: list[OrderLine] | None = None) -> dict[int, str]:
    """Per line id of `order`: LineState.ACTIVE, or why it cannot be used any more."""
    lines = list(order.lines.all()) if lines is None else lines
    if order.status == OrderStatus.REFUNDED:
        # All of it was returned: by refunds, or by a dispute the buyer's bank holds or won.
        ledger = ledger_line_totals(reference=order.reference)
        return {
            line.pk: LineState.DISPUTED
            if ledger.get(line.line_key, {}).get(LedgerKind.CHARGEBACK, 0) > 0
            else LineState.REFUNDED
            for line in lines
        }
    if order.status not in OWNED_ORDER_STATUSES:
        return {line.pk: LineState.UNPAID for line in lines}
    reserved = {
        row["line_key"]: row["total"]
        for row in Refund.objects.filter(reference=order.reference)
        .exclude(status=RefundStatus.FAILED)
        .values("line_key")
        .annotate(total=Sum("amount"))
    }
    # The ledger handler moves a paid order to (partly) refunded in the transaction that
    # records a refund or chargeback, so a PAID order has neither in its ledger: one query
    # fewer on the order page. Reserved refunds are not in the ledger yet: always read.
    ledger = (
        ledger_line_totals(reference=order.reference) if order.status != OrderStatus.PAID else {}
    )
    states = {}
    for line in lines:
        key = line.line_key
        totals = ledger.get(key, {})
        # A refund made at the gateway has a ledger entry but no Refund row of ours.
        refunded = max(reserved.get(key, 0), totals.get(LedgerKind.REFUND, 0))
        if totals.get(LedgerKind.CHARGEBACK, 0) > 0:
            states[line.pk] = LineState.DISPUTED
        elif line.total_amount > 0 and refunded >= line.total_amount:
            states[line.pk] = LineState.REFUNDED
        else:
            states[line.pk] = LineState.ACTIVE
    return states


def line_state(*, line: OrderLine) -> str:
    return line_states(order=line.order, lines=[line])[line.pk]


# --- links -----------------------------------------------------------------------------------

_LINK_SALT = "storefront.download.v2"


def download_token(*, line: OrderLine, schema: str) -> str:
    """A download link's token: the line and the store, signed and timestamped. It is valid
    for DELIVERY_LINK_MAX_AGE seconds; the order page makes fresh ones on every view."""
    return signing.TimestampSigner(salt=_LINK_SALT).sign_object({"l": line.pk, "s": schema})


@dataclass(frozen=True)
class LinkCheck:
    line_id: int | None  # the line the link is for, if its signature is genuine for this store
    expired: bool = False


def download_check(*, token: str, schema: str) -> LinkCheck:
    """What a download link grants: nothing if forged or for another store; `expired` if it
    is genuine but too old (the buyer is sent back to their order page for a fresh one)."""
    signer = signing.TimestampSigner(salt=_LINK_SALT)
    expired = False
    try:
        data = signer.unsign_object(token, max_age=settings.DELIVERY_LINK_MAX_AGE)
    except signing.SignatureExpired:
        expired = True
        try:
            data = signer.unsign_object(token)
        except signing.BadSignature:
            return LinkCheck(None)
    except (signing.BadSignature, ValueError, UnicodeDecodeError):
        return LinkCheck(None)
    if not isinstance(data, dict) or data.get("s") != schema or db_id(data.get("l")) is None:
        return LinkCheck(None)
    return LinkCheck(data["l"], expired=expired)


# --- access rows: downloads and license keys -------------------------------------------------

# Crockford's base32 (no I, L, O, U): 5 groups of 5 characters, 125 random bits.
_KEY_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def license_key_make() -> str:
    chars = "".join(secrets.choice(_KEY_ALPHABET) for _ in range(25))
    return "-".join(chars[i : i + 5] for i in range(0, 25, 5))


def license_key_normalize(key: str) -> str:
    """What a buyer might paste (lower case, spaces, O for 0) → the stored form."""
    cleaned = "".join(ch for ch in key.upper() if ch.isalnum())
    cleaned = cleaned.translate(str.maketrans({"O": "0", "I": "1", "L": "1"}))
    if len(cleaned) != 25:
        return ""
    return "-".join(cleaned[i : i + 5] for i in range(0, 25, 5))


def line_access_ensure(*, line: OrderLine) -> LineAccess:
    """The line's access row, made once; with a license key if its product gives them. Safe
    to call concurrently and again: the row is unique per line, the key set only while null."""
    try:
        with transaction.atomic():
            access, _ = LineAccess.objects.get_or_create(line=line)
    except IntegrityError:  # a concurrent caller made it between our read and insert
        access = LineAccess.objects.get(line=line)
    if line.product.license_keys and not access.license_key:
        for _ in range(3):  # a key collision (2^-125) is retried, not fatal
            try:
                with transaction.atomic():
                    LineAccess.objects.filter(pk=access.pk, license_key__isnull=True).update(
                        license_key=license_key_make()
                    )
                break
            except IntegrityError:
                continue
        access.refresh_from_db()
    return access


def order_access_ensure(
    *, order: Order, lines: list[OrderLine] | None = None
) -> dict[int, LineAccess]:
    """Access rows for every line of a paid order (license keys issued). Called when the
    order is paid, when a line is added after checkout, and by the pages as a safety net:
    one read when every row is there already."""
    lines = list(order.lines.select_related("product")) if lines is None else lines
    found = {a.line_id: a for a in LineAccess.objects.filter(line__in=[line.pk for line in lines])}
    for line in lines:
        access = found.get(line.pk)
        if access is None or (line.product.license_keys and not access.license_key):
            found[line.pk] = line_access_ensure(line=line)
    return found


def download_count(*, line: OrderLine) -> bool:
    """Count one download of `line`; False when the product's limit is reached. One
    conditional UPDATE, so concurrent downloads never pass the limit."""
    access = line_access_ensure(line=line)
    rows = LineAccess.objects.filter(pk=access.pk)
    limit = line.product.download_limit
    if limit is not None:
        rows = rows.filter(downloads__lt=limit)
    return bool(rows.update(downloads=F("downloads") + 1, last_download_at=timezone.now()))


# --- license verification (partner API) ------------------------------------------------------


@dataclass(frozen=True)
class LicenseInfo:
    key: str
    valid: bool
    status: str  # LineState
    product_slug: str
    product_name: str
    order_token: str
    line_id: int
    issued_at: object


def license_verify(*, key: str) -> LicenseInfo | None:
    """The license `key` in this store, with whether it is valid now; None if this store
    never issued it (another store's key is unknown here: each store is its own schema)."""
    normalized = license_key_normalize(key)
    if not normalized:
        return None
    access = (
        LineAccess.objects.select_related("line__product", "line__order")
        .filter(license_key=normalized)
        .first()
    )
    if access is None:
        return None
    line = access.line
    state = line_state(line=line)
    return LicenseInfo(
        key=normalized,
        valid=state == LineState.ACTIVE,
        status=state,
        product_slug=line.product.slug,
        product_name=line.product.name,
        order_token=line.order.token,
        line_id=line.pk,
        issued_at=access.created_at,
    )
