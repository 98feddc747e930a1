"""Fixtures for the worker-discipline tests: the follow-ups' real SMTP server, shared."""

from tests.followups.conftest import smtp, smtp_mail  # noqa: F401 - fixtures re-exported
