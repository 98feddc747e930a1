from tests.followups.conftest import smtp, smtp_mail  # noqa: F401 - the real SMTP server
