"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it receives, for the email tests."""

from __future__ import annotations

import asyncio
import contextlib
import email
import threading
from email import policy
from email.message import Message

from aiosmtpd.controller import Controller

from devtools.services import free_port


class Collector:
    """aiosmtpd handler: keeps every accepted message. `hold_next()` makes the next delivery
    hang at RCPT (the sender blocks mid-send) until `release()`; the held delivery is then
    refused, as a connection cut by a dying sender would leave it."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._hold = False
        self.held = threading.Event()
        self._release = threading.Event()

    def hold_next(self) -> None:
        self._hold, self._release = True, threading.Event()
        self.held.clear()

    def release(self) -> None:
        self._release.set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self._hold:
            self._hold = False
            self.held.set()
            await asyncio.get_running_loop().run_in_executor(None, self._release.wait)
            return "421 4.3.0 Closing, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(
            envelope.original_content or envelope.content, policy=policy.default
        )
        with self._lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m["To"] == address]


class RefusingCollector(Collector):
    """Refuses one mailbox for good (550), as a real server does for an address that is gone."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("gone@"):
            return "550 5.1.1 No such user"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


def smtp_start() -> tuple[Controller, Collector]:
    collector = Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=free_port())
    controller.start()
    return controller, collector


def text_of(message: Message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def mail_server_unreachable(settings) -> None:
    """Django's SMTP backend pointed at a local port nobody listens on (pytest's `settings`)."""
    from devtools.services import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""


@contextlib.contextmanager
def refusing_mail_server(settings):
    """A local SMTP server that refuses gone@… for good (550), Django's SMTP port pointed at it
    (with the `smtp_mail` fixture's other settings); yields its collector."""
    from devtools.services import free_port

    collector = RefusingCollector()
    controller = Controller(collector, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_PORT = controller.port
    try:
        yield collector
    finally:
        controller.stop()
