"""A logging filter that removes card numbers, API keys, secrets and credentials from records.

Attached to every handler in settings.LOGGING, so whatever a library or our own code puts in
a message, its arguments or a traceback is redacted before it is written anywhere.
"""

from __future__ import annotations

import logging
import re
import traceback

# 13–19 digits, optionally grouped by single spaces or hyphens; only Luhn-valid runs are cards.
_CARD_RE = re.compile(r"(?<![\d.])\d(?:[ -]?\d){12,18}(?![\d])")
_SECRET_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Stripe secret and restricted keys, webhook signing secrets.
    (re.compile(r"(?<![A-Za-z0-9])(?:sk|rk)_(?:live|test)_[A-Za-z0-9_]+"), "[REDACTED:stripe-key]"),
    # PaymentIntent / SetupIntent client secrets.
    (
        re.compile(r"(?<![A-Za-z0-9])(?:pi|seti)_[A-Za-z0-9]+_secret_[A-Za-z0-9]+"),
        "[REDACTED:client-secret]",
    ),
    (re.compile(r"(?<![A-Za-z0-9])whsec_[A-Za-z0-9_+/=]+"), "[REDACTED:webhook-secret]"),
    # Credentials in headers, dict reprs or query strings: keep the name, drop the value.
    (
        re.compile(
            r"(?i)\b((?:http_)?(?:authorization|proxy[-_]authorization|x[-_]api[-_]key|cookie|"
            r"stripe[-_]signature)|[a-z_]*(?:password|passwd|secret|token)|api[-_]?key|sessionid)"
            r"""(["']?\s*[:=]\s*["']?)([^"'\r\n,;&}]+)"""
        ),
        r"\1\2[REDACTED]",
    ),
    (re.compile(r"(?i)\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 [REDACTED]"),
]


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        # PCI DSS allows the last four to be shown; they help support match a payment.
        return f"[REDACTED:card ****{digits[-4:]}]"
    return match.group(0)


def register_secret_pattern(pattern: str, replacement: str = "[REDACTED]") -> None:
    """Add a pattern at start-up, e.g. the partner API key prefix."""
    _SECRET_PATTERNS.append((re.compile(pattern), replacement))


def redact(text: str) -> str:
    if not text:
        return text
    text = _CARD_RE.sub(_card, text)
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# An email address (what a buyer is known by). Written as a keyed digest, so a log line can
# still be matched to a request ("the same address failed twice") but never names anyone:
# an erasure (storefront.privacy) then has nothing to rewrite in the logs we keep.
# `%40`: the same address in a query string (an access log's request line).
_EMAIL_RE = re.compile(r"(?<![\w.+%-])[\w.+%-]{1,64}(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def _email(match: re.Match[str]) -> str:
    from core.identity import email_digest

    try:
        return f"[email:{email_digest(match.group(0).replace('%40', '@'))[:12]}]"
    except Exception:  # settings not configured (a bare script): still never the address
        return "[email]"


def redact_personal(text: str) -> str:
    """`redact`, and every email address replaced by a digest: for log lines, not for the
    audit trail (whose details name the buyer until an erasure replaces them)."""
    if not text:
        return text
    return _EMAIL_RE.sub(_email, redact(text))


class RedactSecretsFilter(logging.Filter):
    """Rewrite a record's message, traceback and stack with secrets removed; never drop it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep what we can, redacted
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = redact_personal(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = redact_personal(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_personal(record.stack_info)
        return True
