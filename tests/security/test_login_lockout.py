"""Admin login throttling: lockout after repeated failures per account and per address."""

import pytest
from django.test import Client

from core import ratelimit

PASSWORD = "owner-pass-123"


@pytest.fixture
def clock(monkeypatch):
    now = {"ms": 1_900_000_000_000}
    monkeypatch.setattr(ratelimit, "_clock_ms", lambda: now["ms"])

    def advance(seconds: float) -> None:
        now["ms"] += int(seconds * 1000)

    return advance


def login(username="owner", password="wrong", host="t1.localhost", address="203.0.113.20"):
    c = Client(HTTP_HOST=host, REMOTE_ADDR=address)
    return c.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password, "next": "/admin/"},
    )


def test_five_wrong_passwords_lock_the_account_even_for_the_right_password(tenant, clock):
    for _ in range(5):
        assert login().status_code == 200  # the form again, with an error
    locked = login(password=PASSWORD)
    assert locked.status_code == 429
    assert locked["Retry-After"] == str(15 * 60)
    assert b"Too many failed sign-in attempts" in locked.content
    # Per account: another address does not help.
    assert login(password=PASSWORD, address="198.51.100.99").status_code == 429


def test_the_lockout_lifts_once_the_failures_age_out(tenant, clock):
    for _ in range(5):
        login()
        clock(60)
    assert login(password=PASSWORD).status_code == 429
    clock(15 * 60 - 5 * 60 + 1)  # the first failure is now more than 15 minutes old
    assert login(password=PASSWORD).status_code == 302


def test_four_failures_do_not_lock_and_a_success_forgets_them(tenant, clock):
    for _ in range(4):
        login()
    assert login(password=PASSWORD).status_code == 302
    for _ in range(4):
        assert login().status_code == 200
    assert login(password=PASSWORD).status_code == 302


def test_many_failures_from_one_address_lock_that_address_for_every_account(tenant, clock):
    for i in range(20):
        login(username=f"guess{i}", address="192.0.2.66")
    assert login(password=PASSWORD, address="192.0.2.66").status_code == 429
    assert login(password=PASSWORD, address="192.0.2.67").status_code == 302


def test_a_lockout_on_one_store_does_not_lock_the_same_name_on_another(tenant, clock):
    for _ in range(5):
        login(host="t1.localhost")
    assert login(password=PASSWORD, host="t1.localhost").status_code == 429
    assert login(password=PASSWORD, host="t2.localhost").status_code == 302


def test_the_platform_admin_login_is_throttled_too(db, clock):
    for _ in range(5):
        login(username="ops", host="localhost")
    assert login(username="ops", host="localhost").status_code == 429
