"""The attribution cookie's signature is checked once per process, never past its age."""

from __future__ import annotations

import time

from django.core import signing
from django.test import RequestFactory

from storefront import attribution
from storefront.attribution import COOKIE, MAX_AGE, attribution_read


def _request(raw: str):
    request = RequestFactory().get("/")
    request.COOKIES[COOKIE] = raw
    return request


def _signed(data: dict, *, at: float, monkeypatch) -> str:
    with monkeypatch.context() as m:
        m.setattr(signing.time, "time", lambda: at)
        return signing.dumps(data, salt=COOKIE)


def test_a_returning_visitors_cookie_is_verified_once_and_read_as_it_was(monkeypatch):
    raw = _signed({"visitor_id": "v1", "source": "mail"}, at=time.time(), monkeypatch=monkeypatch)
    assert attribution_read(_request(raw)) == {"visitor_id": "v1", "source": "mail"}
    calls = []
    monkeypatch.setattr(signing, "loads", lambda *a, **k: calls.append(a))
    first = attribution_read(_request(raw))
    first["source"] = "changed by a caller"
    assert attribution_read(_request(raw)) == {"visitor_id": "v1", "source": "mail"}
    assert calls == []  # no signature check the second and third time


def test_a_remembered_cookie_is_refused_once_it_is_older_than_its_max_age(monkeypatch):
    now = time.time()
    raw = _signed({"visitor_id": "v2"}, at=now - MAX_AGE + 60, monkeypatch=monkeypatch)
    assert attribution_read(_request(raw)) == {"visitor_id": "v2"}
    monkeypatch.setattr(attribution.time, "time", lambda: now + 120)
    monkeypatch.setattr(signing.time, "time", lambda: now + 120)
    assert attribution_read(_request(raw)) is None


def test_a_forged_or_expired_cookie_is_refused_every_time_and_never_remembered(monkeypatch):
    good = _signed({"visitor_id": "v3"}, at=time.time(), monkeypatch=monkeypatch)
    forged = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    old = _signed({"visitor_id": "v4"}, at=time.time() - MAX_AGE - 1, monkeypatch=monkeypatch)
    for raw in (forged, old, "no-colons-at-all", "a:b"):
        for _ in range(2):
            assert attribution_read(_request(raw)) is None
        assert raw not in attribution._verified


def test_a_cookie_with_a_nul_or_a_lone_surrogate_anywhere_is_absent_not_an_error(monkeypatch):
    good = _signed({"utm_source": "newsletter"}, at=time.time(), monkeypatch=monkeypatch)
    value, stamp, signature = good.rsplit(":", 2)
    for raw in (
        "\x00",
        "\ud800",
        f"{value}:{stamp}:\ud800{signature[1:]}",  # reaches the signature's comparison
        f"{value}\x00:{stamp}:{signature}",
        f"{value}:\ud800:{signature}",
    ):
        assert attribution_read(_request(raw)) is None, repr(raw)
    assert attribution.attribution_read(_request(good)) == {"utm_source": "newsletter"}
