"""A link or cookie we signed ourselves, but holding something else than what the code that
reads it expects (signed by an earlier version, or by another of our links with the same
salt): a list, a string, an id that is text, a float, a boolean, negative or past
PostgreSQL's bigint. Each reader refuses it with its own answer (None or its refusal), never
with another exception (a 500 at the view)."""

from __future__ import annotations

import pytest
from django.core import signing
from django.db import connection

from storefront import team
from storefront.privacy import services as privacy
from storefront.services import buyer_links, delivery
from storefront.services.followups import accept, recovery, send
from storefront.services.followups.common import FollowUpRefused
from storefront.services.upsell.common import OfferRefused
from subscriptions import notices
from tenants import signup

HUGE = 99999999999999999999

ODD_IDS = ["abc", HUGE, -1, 0, 1.5, True, None, {"a": 1}, [1], ""]


def _payloads(id_key: str, **extra) -> list:
    shaped = [
        {"s": "t1", id_key: value, "n": "x", "t": "x", "e": "x", **extra} for value in ODD_IDS
    ]
    return [["x"], "x", 7, None, {}, {"s": ["t1"]}, *shaped]


def _dumps(salt: str):
    return lambda data: signing.dumps(data, salt=salt)


def _timestamped(salt: str):
    return lambda data: signing.TimestampSigner(salt=salt).sign_object(data)


READERS = {
    "team invitation": (
        _dumps(team._SALT),
        "i",
        lambda token: team.invitation_open(signed=token),
        (team.TeamRefused,),
    ),
    "abandoned-checkout reminder": (
        _dumps(recovery._RECOVERY_SALT),
        "r",
        lambda token: recovery._send_for(token, "t1"),
        (),
    ),
    "follow-up one-click offer": (
        _dumps(accept._ACCEPT_SALT),
        "f",
        lambda token: accept._send_for(token, "t1"),
        (FollowUpRefused,),
    ),
    "unsubscribe": (
        _dumps(send._UNSUBSCRIBE_SALT),
        "c",
        lambda token: send.customer_unsubscribe(signed=token, schema="t1"),
        (FollowUpRefused,),
    ),
    "privacy link": (
        _dumps(privacy._LINK_SALT),
        "o",
        lambda token: privacy.privacy_link_order(token=token, schema="t1"),
        (),
    ),
    "download link": (
        _timestamped(delivery._LINK_SALT),
        "l",
        lambda token: _line(delivery.download_check(token=token, schema="t1").line_id),
        (),
    ),
    "purchases link": (
        _timestamped(buyer_links._SALT),
        "e",
        lambda token: buyer_links.purchases_check(token=token, schema="t1"),
        (),
    ),
    "subscription manage link": (
        _dumps(notices._MANAGE_SALT),
        "c",
        lambda token: _customer(notices.manage_check(token=token, schema="t1")),
        (),
    ),
    "signup verification": (
        _dumps(signup.VERIFY_SALT),
        "c",
        lambda token: signup.signup_verify_read(token=token),
        (signup.SignupError,),
    ),
    "offer page token": (
        _dumps("storefront.upsell"),
        "o",
        lambda token: _offer_token(token),
        (OfferRefused,),
    ),
}


def _line(line_id):
    """What the download view does with the id the link grants."""
    from storefront.models import OrderLine

    return OrderLine.objects.filter(pk=line_id).first() if line_id is not None else None


def _customer(customer_id):
    """What the manage page does with the id the link grants."""
    from storefront.models import Customer

    return Customer.objects.filter(pk=customer_id).first() if customer_id is not None else None


def _offer_token(token: str):
    from storefront.models import Order
    from storefront.services.upsell.common import _token_load

    return _token_load(signed=token, schema="t1", order=Order(pk=1))


@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_signed_value_of_another_shape_is_refused_by_its_reader(tenant, reader):
    sign, id_key, read, refusals = READERS[reader]
    unexpected = []
    for payload in _payloads(id_key):
        token = sign(payload)
        try:
            read(token)
        except refusals:
            pass
        except Exception as exc:  # noqa: BLE001 - what the test looks for
            unexpected.append((payload, repr(exc)[:160]))
            connection.needs_rollback = False
    assert unexpected == []
