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


# --- look-alike spellings (issue 20, item 4) ------------------------------------------------
import unicodedata  # noqa: E402

from django.core.cache import cache  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _compatibility_variants(letter: str) -> list[str]:
    """Every code point that NFKC turns into `letter` (fullwidth, script, mathematical…)."""
    return [
        chr(cp)
        for cp in range(0x80, 0x30000)
        if chr(cp) != letter and unicodedata.normalize("NFKC", chr(cp)) == letter
    ]


_VARIANTS = {letter: [letter, *_compatibility_variants(letter)] for letter in "owner"}
spellings_of_owner = st.tuples(*(st.sampled_from(_VARIANTS[c]) for c in "owner")).map("".join)


@pytest.mark.parametrize("spelling", ["ｏｗｎｅｒ", "owｎer", "ℴwner"])
def test_five_failures_for_owner_lock_every_look_alike_that_logs_in_as_owner(
    tenant, clock, spelling
):
    assert unicodedata.normalize("NFKC", spelling) == "owner"
    for _ in range(5):
        login()
    locked = login(username=spelling, password=PASSWORD)
    assert locked.status_code == 429
    # ...and the refused look-alike did not reset the owner's count.
    assert login(password=PASSWORD).status_code == 429


@pytest.mark.parametrize("spelling", ["ｏｗｎｅｒ", "owｎer", "ℴwner"])
def test_failures_under_a_look_alike_count_for_owner(tenant, clock, spelling):
    for _ in range(5):
        assert login(username=spelling).status_code == 200
    assert login(password=PASSWORD).status_code == 429


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(failing=st.lists(spellings_of_owner, min_size=5, max_size=5), trying=spellings_of_owner)
def test_the_lockout_holds_for_every_spelling_that_logs_in_as_the_same_user(
    tenant, clock, failing, trying
):
    cache.clear()  # a fresh count for each example
    clock(3600)
    # The spelling really is the owner's account: unlocked, it logs in.
    assert login(username=trying, password=PASSWORD).status_code == 302
    for spelling in failing:
        assert login(username=spelling).status_code == 200
    assert login(username=trying, password=PASSWORD).status_code == 429
    assert login(password=PASSWORD).status_code == 429


def test_a_name_with_a_nul_byte_is_refused_without_a_500(tenant, clock):
    # The input boundary (core/boundary.py) refuses the field before the login form runs: a
    # readable 400 naming it, and the attempt counts for nothing.
    response = login(username="own\x00er")
    assert response.status_code == 400
    assert b"username" in response.content


def test_a_lone_surrogate_or_an_overlong_name_gets_a_key_without_touching_the_database(
    tenant, django_assert_num_queries
):
    with django_assert_num_queries(0):
        for name in ["own\ud800er", "o" * 10_000, "own\x00er"]:
            key = ratelimit.login_account_identity(name)
            assert key.startswith("name:")
            ratelimit.ratelimit_key(scope="s", dimension="account", identity=key)
