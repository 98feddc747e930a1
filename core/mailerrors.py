"""A mail server's trouble, told apart from one email's. A loop over emails stops on the first
(every email would fail the same way; the next run tries again) and counts the second against
the email it concerns (core/loops.py), so one refused address never holds the others up."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet

from core.loops import each_pk_done

# `stop_on` for a loop over emails: the server unreachable, a bad login, a 4xx "try later".
MAIL_SERVER_TROUBLE = (OSError,)


class UndeliverableEmail(ValueError):
    """The server refused this one message for good (a 5xx for its recipient or content)."""


def send_counted(send: Callable[..., Any], **kwargs: Any) -> Any:
    """`send(**kwargs)` for a loop: a permanent refusal of this message (5xx for all its
    recipients or for its data) becomes UndeliverableEmail, counted against the record; any
    other OSError is the server's and propagates, for the loop's `stop_on`."""
    try:
        return send(**kwargs)
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError) as exc:
        if isinstance(exc, smtplib.SMTPRecipientsRefused):  # every recipient was refused
            code = min((c for c, _ in exc.recipients.values()), default=550)
        else:
            code = exc.smtp_code
        if code < 500:
            raise
        raise UndeliverableEmail(f"the mail server refused this email: {exc}") from exc


def each_email_sent(
    loop: str, rows: QuerySet, send: Callable[..., Any], *, arg: str, limit: int, what: str
) -> int:
    """A sweep over emails (`core.loops.each_pk_done`): `send(**{arg: pk})` for each row, a
    refused message counted against its row, the mail server's trouble ending the run."""
    return each_pk_done(
        loop,
        rows,
        lambda pk: send_counted(send, **{arg: pk}),
        limit=limit,
        what=what,
        stop_on=MAIL_SERVER_TROUBLE,
    )
