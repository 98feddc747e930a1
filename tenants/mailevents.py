"""Bounces and complaints: addresses the platform must stop mailing.

Two ways in, one record (`suppression_record`):

- the mail provider's webhook, `POST /webhooks/mail/` on the platform's domain: a JSON body
  `{"type": "bounce"|"complaint", "recipient": "…", "bounce_type": "permanent"|"transient",
  "diagnostic": "…"}` signed with MAIL_EVENTS_SECRET (`X-Mail-Signature: t=<unix>,v1=<hex
  HMAC-SHA256 of "<t>.<body>">`, five minutes of tolerance, like the partner webhooks we send).
  A provider's own format is translated to this one by a small adapter in front of it;
- a Maildir of delivery reports (`MAIL_BOUNCE_MAILDIR`, the bounce address's mailbox):
  `mailbox_collect` reads RFC 3464 delivery-status reports (Action: failed, 5.x.x) and
  RFC 5965 feedback reports (abuse), then moves each message to `cur/` so it is read once.

Transient bounces (4.x.x, "transient") suppress nothing: the next send may well succeed.
Only a keyed digest of the address is stored (core.identity.email_digest).
"""

from __future__ import annotations

import email
import hashlib
import hmac
import json
import logging
import time
from email import policy
from email.message import Message
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction

from core.identity import email_digest, email_key
from core.logging import redact
from tenants.models import MailSuppression

logger = logging.getLogger(__name__)

SIGNATURE_TOLERANCE = 300


class MailEventRefused(ValueError):
    """The webhook body or signature is not acceptable; nothing was written."""


def is_suppressed(address: str) -> bool:
    return MailSuppression.objects.filter(address_digest=email_digest(address)).exists()


def suppression_record(*, address: str, reason: str, source: str, detail: str = "") -> bool:
    """Suppress `address`; True if it was new. Safe to repeat (unique digest)."""
    if "@" not in (address or ""):
        raise MailEventRefused("the recipient is not an email address")
    try:
        with transaction.atomic():
            MailSuppression.objects.create(
                address_digest=email_digest(address),
                reason=reason,
                source=source,
                detail=redact(detail.replace(address, "[recipient]"))[:300],
            )
    except IntegrityError:
        return False
    logger.info("mail suppression added (%s, %s)", reason, source)
    return True


def webhook_signature(*, secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def webhook_receive(*, body: bytes, signature: str, now: float | None = None) -> bool:
    """Verify and apply one provider event. Raises MailEventRefused for anything wrong."""
    secret = settings.MAIL_EVENTS_SECRET
    if not secret:
        raise MailEventRefused("mail events are not configured")
    parts = dict(p.split("=", 1) for p in (signature or "").split(",") if "=" in p)
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError:
        raise MailEventRefused("missing or malformed X-Mail-Signature") from None
    now = time.time() if now is None else now
    if abs(now - timestamp) > SIGNATURE_TOLERANCE:
        raise MailEventRefused("signature timestamp outside the tolerance")
    expected = webhook_signature(secret=secret, timestamp=timestamp, body=body)
    if not hmac.compare_digest(expected, f"t={timestamp},v1={parts.get('v1', '')}"):
        raise MailEventRefused("signature does not match")
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MailEventRefused("the body is not JSON") from None
    if not isinstance(event, dict):
        raise MailEventRefused("the body must be a JSON object")
    kind, recipient = event.get("type"), event.get("recipient")
    if kind not in ("bounce", "complaint") or not isinstance(recipient, str):
        raise MailEventRefused('expected {"type": "bounce"|"complaint", "recipient": "…"}')
    if kind == "bounce" and event.get("bounce_type", "permanent") != "permanent":
        return False  # a transient failure: try again next time
    return suppression_record(
        address=email_key(recipient),
        reason=kind,
        source="webhook",
        detail=str(event.get("diagnostic", ""))[:300],
    )


def _report_part(message: Message, report_type: str) -> Message | None:
    if message.get_content_type() != "multipart/report":
        return None
    if message.get_param("report-type", "").lower() != report_type:
        return None
    wanted = {
        "delivery-status": "message/delivery-status",
        "feedback-report": "message/feedback-report",
    }[report_type]
    for part in message.walk():
        if part.get_content_type() == wanted:
            return part
    return None


def _fields(part: Message) -> list[dict[str, str]]:
    """The header blocks of a delivery-status or feedback-report part, lower-cased names."""
    payload = part.get_payload()
    if isinstance(payload, list):  # the email package parses message/delivery-status blocks
        blocks = [{k.lower(): str(v) for k, v in block.items()} for block in payload]
    else:
        text = payload if isinstance(payload, str) else payload.decode("utf-8", "replace")
        blocks = []
        for chunk in text.replace("\r\n", "\n").split("\n\n"):
            block = {}
            for line in chunk.splitlines():
                name, _, value = line.partition(":")
                if value:
                    block[name.strip().lower()] = value.strip()
            if block:
                blocks.append(block)
    return blocks


def _address(value: str) -> str:
    # "rfc822; buyer@example.com"
    return email_key(value.split(";", 1)[-1].strip().strip("<>"))


def report_events(message: Message) -> list[tuple[str, str, str]]:
    """(reason, address, diagnostic) for every permanent failure or complaint in `message`."""
    found = []
    status_part = _report_part(message, "delivery-status")
    if status_part is not None:
        for block in _fields(status_part):
            recipient = block.get("final-recipient") or block.get("original-recipient")
            action = block.get("action", "").lower()
            status = block.get("status", "")
            if recipient and action == "failed" and status.startswith("5"):
                found.append(("bounce", _address(recipient), block.get("diagnostic-code", "")))
    feedback = _report_part(message, "feedback-report")
    if feedback is not None:
        for block in _fields(feedback):
            recipient = block.get("original-rcpt-to")
            if recipient and block.get("feedback-type", "abuse").lower() == "abuse":
                found.append(("complaint", _address(recipient), "feedback report"))
    return found


def mailbox_collect(*, maildir: str | None = None) -> int:
    """Read new reports in the bounce Maildir; returns how many addresses were suppressed.
    Each message is moved to cur/ after it is applied, so a second run reads nothing again;
    one unreadable message is moved aside too, never blocking the rest."""
    root = Path(maildir if maildir is not None else settings.MAIL_BOUNCE_MAILDIR or "")
    if not str(root) or not (root / "new").is_dir():
        return 0
    (root / "cur").mkdir(exist_ok=True)
    added = 0
    for path in sorted((root / "new").iterdir()):
        try:
            message = email.message_from_bytes(path.read_bytes(), policy=policy.compat32)
            for reason, address, detail in report_events(message):
                added += suppression_record(
                    address=address, reason=reason, source="mailbox", detail=detail
                )
        except FileNotFoundError:  # another run took it
            continue
        except Exception:
            logger.exception("bounce mailbox: %s could not be read", path.name)
        try:
            path.rename(root / "cur" / f"{path.name}:2,S")
        except FileNotFoundError:
            pass
    return added
