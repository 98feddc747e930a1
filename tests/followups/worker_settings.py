"""Test settings for a real worker process that sends follow-ups to the test's SMTP server."""

import os

from config.settings.test import *  # noqa: F403

EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = int(os.environ.get("FOLLOWUP_SMTP_PORT", "25"))
EMAIL_HOST_USER = ""
EMAIL_HOST_PASSWORD = ""
EMAIL_USE_TLS = False
EMAIL_USE_SSL = False
STOREFRONT_EMAIL_SCHEME = "http"
