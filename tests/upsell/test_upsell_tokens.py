"""Accept is one POST bound to the order by a signed, single-use, time-limited token."""

import time

import pytest
from django.core import signing
from django.test import Client
from django.utils import timezone

from offers.models import DecisionStatus, OfferDecision
from payments.models import ChargeAttempt
from storefront.services import upsell
from tests import gateway_helpers as gw
from tests.upsell.helpers import buy, make_catalog, offer_token

pytestmark = pytest.mark.gateway

HOST = "t1.localhost"


@pytest.fixture
def order_and_token(tenant, client_for, stripe_api_base):
    make_catalog()
    client = client_for(HOST)
    order = buy(client)
    return client, order, offer_token(client, order)


def _no_charge(order):
    assert (
        not ChargeAttempt.objects.filter(purpose__startswith=f"order:{order.pk}:")
        .exclude(purpose__endswith=":primary")
        .exists()
    )
    assert len(gw.payment_intents()) == 1  # the primary only
    assert not order.lines.filter(kind__in=["upsell", "downsell"]).exists()


def _accept(client, order, token):
    return client.post(f"/o/{order.token}/offer/accept", {"token": token})


def test_a_forged_token_is_refused_with_a_clear_page_and_no_charge(order_and_token):
    client, order, token = order_and_token
    forged = signing.dumps({"s": "t1", "o": order.pk, "f": 1, "n": "0" * 32}, salt="other")
    for bad in (forged, token[:-3] + "abc", "", "not-a-token"):
        response = _accept(client, order, bad)
        assert response.status_code == 403
        assert "Nothing was charged" in response.content.decode()
    _no_charge(order)
    assert OfferDecision.objects.get(order=order).status == DecisionStatus.PRESENTED


def test_a_token_signed_for_another_store_is_refused(order_and_token):
    client, order, _ = order_and_token
    decision = OfferDecision.objects.get(order=order)
    response = _accept(client, order, upsell.offer_token(decision=decision, schema="t2"))
    assert response.status_code == 403
    _no_charge(order)


def test_an_expired_token_is_refused_and_charges_nothing(order_and_token, monkeypatch):
    client, order, _ = order_and_token
    decision = OfferDecision.objects.get(order=order)
    real_time = time.time
    with monkeypatch.context() as m:  # a token signed 31 minutes ago
        m.setattr(signing.time, "time", lambda: real_time() - 31 * 60)
        old = upsell.offer_token(decision=decision, schema="t1")
    response = _accept(client, order, old)
    assert response.status_code == 410 and "expired" in response.content.decode()
    _no_charge(order)


def test_an_offer_past_its_expiry_in_the_database_is_refused(order_and_token):
    client, order, token = order_and_token
    OfferDecision.objects.filter(order=order).update(expires_at=timezone.now())
    response = _accept(client, order, token)
    assert response.status_code == 410
    _no_charge(order)


def test_a_reused_token_is_refused_and_the_offer_is_charged_once(order_and_token):
    client, order, token = order_and_token
    assert _accept(client, order, token).status_code == 303
    again = _accept(client, order, token)
    assert again.status_code == 409 and "already" in again.content.decode()
    declined_after = client.post(f"/o/{order.token}/offer/decline", {"token": token})
    assert declined_after.status_code == 409
    assert len(gw.payment_intents()) == 2
    assert order.lines.filter(kind="upsell").count() == 1


def test_another_orders_token_is_refused_both_ways(order_and_token, client_for):
    client, order, token = order_and_token
    other_client = client_for(HOST)
    other = buy(other_client, email="someone-else@example.com")
    other_token = offer_token(other_client, other)
    assert _accept(client, order, other_token).status_code == 403
    assert _accept(other_client, other, token).status_code == 403
    assert len(gw.payment_intents()) == 2  # the two primaries
    assert not ChargeAttempt.objects.filter(purpose__endswith=":upsell").exists()


def test_a_get_never_charges(order_and_token):
    client, order, token = order_and_token
    response = client.get(f"/o/{order.token}/offer/accept", {"token": token})
    assert response.status_code == 405
    assert "Nothing was charged" in response.content.decode()
    _no_charge(order)


def test_an_accept_without_the_csrf_token_is_refused(order_and_token):
    client, order, token = order_and_token
    strict = Client(enforce_csrf_checks=True, HTTP_HOST=HOST)
    strict.cookies = client.cookies
    response = strict.post(f"/o/{order.token}/offer/accept", {"token": token})
    assert response.status_code == 403
    _no_charge(order)
    # The same client with the page's CSRF token is accepted: the refusal above was the CSRF.
    page = strict.get(f"/o/{order.token}/offer").content.decode()
    csrf = page.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
    ok = strict.post(
        f"/o/{order.token}/offer/accept", {"token": token, "csrfmiddlewaretoken": csrf}
    )
    assert ok.status_code == 303


def test_an_unknown_order_gets_a_404_page_not_a_500(order_and_token):
    client, _, token = order_and_token
    assert client.post("/o/nope/offer/accept", {"token": token}).status_code == 404
