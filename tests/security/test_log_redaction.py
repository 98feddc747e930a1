"""Nothing secret in logs: card numbers, Stripe keys, webhook secrets, credentials redacted."""

import io
import logging

import pytest

from core.logging import RedactSecretsFilter, luhn_valid, redact


@pytest.mark.parametrize(
    "text, secret",
    [
        ("charging card 4242424242424242 now", "4242424242424242"),
        ("card 4000 0025 0000 3155 declined", "4000 0025 0000 3155"),
        ("amex 378282246310005", "378282246310005"),
        ("19 digits 6011000990139424123", None),  # Luhn decides; see the next test
        ("stripe key sk_live_51Habcdefghijklmnop", "sk_live_51Habcdefghijklmnop"),
        ("restricted rk_test_abc123DEF456", "rk_test_abc123DEF456"),
        ("secret whsec_local_demo_secret", "whsec_local_demo_secret"),
        ("{'HTTP_AUTHORIZATION': 'Bearer eyJhbGciOi.payload.sig'}", "eyJhbGciOi.payload.sig"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        ("client_secret=pi_3Nabc_secret_XYZ123", "pi_3Nabc_secret_XYZ123"),
        ("password=hunter2hunter2", "hunter2hunter2"),
    ],
)
def test_secrets_are_removed_from_text(text, secret):
    if secret is None:
        digits = text.split()[-1]
        assert (digits in redact(text)) != luhn_valid(digits)
        return
    assert secret not in redact(text)
    assert "REDACTED" in redact(text)


def test_card_numbers_keep_only_their_last_four():
    assert redact("pan 4242424242424242") == "pan [REDACTED:card ****4242]"


@pytest.mark.parametrize(
    "text",
    [
        "order 1234567890123 paid",
        "amount 100000 cents",
        "idempotency key ord_12_attempt_1",
        "sku_live_x",
    ],
)
def test_ordinary_numbers_and_ids_are_left_alone(text):
    assert redact(text) == text


def _configured_handler() -> logging.Handler:
    handlers = [
        h
        for h in logging.getLogger().handlers
        if any(isinstance(f, RedactSecretsFilter) for f in h.filters)
    ]
    assert handlers, "settings.LOGGING must attach RedactSecretsFilter to the root handler"
    return handlers[0]


@pytest.fixture
def log_output():
    handler = _configured_handler()
    stream = io.StringIO()
    old = handler.setStream(stream)
    yield stream
    handler.setStream(old)


def test_the_configured_log_handler_redacts_messages_and_their_arguments(log_output):
    log = logging.getLogger("payments.gateway")
    log.warning("charge failed for card %s with key %s", "4242 4242 4242 4242", "sk_test_local")
    log.warning("webhook secret is whsec_local_demo_secret")
    log.warning("headers %s", {"Authorization": "Bearer abcdefghijkl", "Accept": "text/html"})
    written = log_output.getvalue()
    for secret in (
        "4242 4242 4242 4242",
        "sk_test_local",
        "whsec_local_demo_secret",
        "abcdefghijkl",
    ):
        assert secret not in written
    assert "[REDACTED:card ****4242]" in written and "'Accept': 'text/html'" in written


def test_the_configured_log_handler_redacts_tracebacks(log_output):
    log = logging.getLogger("storefront.checkout")
    try:
        raise ValueError("gateway said: invalid card 4000000000000002 for key sk_live_abcdef123456")
    except ValueError:
        log.exception("checkout crashed")
    written = log_output.getvalue()
    assert "Traceback" in written and "ValueError" in written
    assert "4000000000000002" not in written and "sk_live_abcdef123456" not in written


def test_a_django_request_error_log_is_redacted(log_output, db, client_for):
    # django.request logs the path of a 404; a card number in a URL must not reach the log.
    client_for("t1.localhost").get("/p/4242424242424242/")
    written = log_output.getvalue()
    assert "Not Found" in written and "4242424242424242" not in written


def test_decimal_fractions_such_as_task_timings_are_not_taken_for_cards():
    # Celery logs "succeeded in 0.0158979899986331s": a Luhn-valid run after a decimal point.
    line = "Task core.tasks.fan_out[abc] succeeded in 0.4242424242424242s: None"
    assert luhn_valid("4242424242424242")
    assert redact(line) == line
    assert redact("card 4242 4242 4242 4242.") == "card [REDACTED:card ****4242]."
