"""gunicorn's access log with secrets redacted (Procfile: --logger-class).

gunicorn writes its access log through its own handlers, not Django's LOGGING, so the request
line (`?api_key=…`), the query string and request headers are redacted here with the same
patterns as every other log line, email addresses included (core.logging.redact_personal)."""

from __future__ import annotations

from gunicorn.glogging import Logger

from core.logging import redact_personal


class RedactingLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        return {
            name: redact_personal(value) if isinstance(value, str) else value
            for name, value in atoms.items()
        }
