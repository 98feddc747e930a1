import pytest

from tests.followups.smtp import smtp_start


@pytest.fixture
def smtp_mail(settings):
    """Django's SMTP backend pointed at a real local SMTP server; yields its collector."""
    controller, collector = smtp_start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 30
    settings.STOREFRONT_EMAIL_SCHEME = "http"
    try:
        yield collector
    finally:
        collector.release()
        controller.stop()


@pytest.fixture
def files():
    """Products made with a deliverable file; their files are deleted afterwards."""
    made = []
    yield made
    for product in made:
        if product.deliverable_file:
            product.deliverable_file.storage.delete(product.deliverable_file.name)
