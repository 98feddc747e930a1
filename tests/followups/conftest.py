import pytest

from tests.followups.smtp import smtp_start


@pytest.fixture
def smtp():
    """A real local SMTP server; yields its collector (received messages in `.messages`)."""
    controller, collector = smtp_start()
    collector.port = controller.port
    try:
        yield collector
    finally:
        collector.release()
        controller.stop()


@pytest.fixture
def smtp_mail(settings, smtp):
    """Django's SMTP backend pointed at the local server."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 30
    settings.STOREFRONT_EMAIL_SCHEME = "http"
    return smtp
