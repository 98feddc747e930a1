"""One-click accept from a follow-up email, over localstripe: the buyer's saved card is
charged once however often (and however concurrently) the email's links are posted."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from analytics.models import Event
from payments.models import AttemptStatus, ChargeAttempt, LedgerEntry
from storefront.models import FollowUpSend, FollowUpStatus, LineKind
from storefront.services import followups
from tests import gateway_helpers as gw
from tests.concurrency import in_threads
from tests.followups.smtp import text_of
from tests.upsell.helpers import buy, make_catalog, offer_token

pytestmark = pytest.mark.gateway
HOST = "t1.localhost"
UPSELL_TOTAL = 1200 + 228  # the upsell offer, reframed for email, with 19% VAT


def _decline_the_upsell(client, order) -> None:
    token = offer_token(client, order)
    declined = client.post(f"/o/{order.token}/offer/decline", {"token": token})
    assert declined.status_code in (302, 303), declined.status_code


def _emails_accept_links(smtp, order) -> list[str]:
    """Send both steps (24 h and 72 h after payment) and return each email's accept path."""
    now = timezone.now()
    assert followups.followups_send_due(now=now + dt.timedelta(hours=25)) == 1
    assert followups.followups_send_due(now=now + dt.timedelta(hours=73)) == 1
    paths = []
    for mail in smtp.to(order.customer.email):
        found = re.search(r"http://t1\.localhost/f/\S+", text_of(mail))
        assert found, text_of(mail)
        paths.append(urlsplit(found.group(0)).path)
    assert len(paths) == 2 and len(set(paths)) == 2
    assert list(FollowUpSend.objects.filter(order=order).values_list("link_kind", flat=True)) == [
        "accept",
        "accept",
    ]
    return paths


def _cross_sell_intents(order) -> list:
    purpose = f"order:{order.pk}:cross_sell"
    return [i for i in gw.payment_intents() if i.metadata.to_dict().get("purpose") == purpose]


def _assert_charged_once(order, offer) -> None:
    (intent,) = _cross_sell_intents(order)
    assert intent.status == "succeeded" and intent.amount == UPSELL_TOTAL
    attempt = ChargeAttempt.objects.get(purpose=f"order:{order.pk}:cross_sell")
    assert attempt.status == AttemptStatus.SUCCEEDED and attempt.sends == 1
    assert attempt.gateway_ref == intent.id
    (line,) = order.lines.filter(kind=LineKind.CROSS_SELL)
    assert (line.product_id, line.total_amount) == (offer.product_id, UPSELL_TOTAL)
    assert list(
        LedgerEntry.objects.filter(reference=order.reference, gateway_ref=intent.id).values_list(
            "kind", "amount"
        )
    ) == [("charge", UPSELL_TOTAL)]
    (accepted,) = Event.objects.filter(order_id=order.pk, name="upsell_accepted")
    assert accepted.source == "email" and accepted.properties["kind"] == "cross_sell"
    assert Event.objects.filter(order_id=order.pk, name="upsell_charged").count() == 1
    assert FollowUpSend.objects.filter(order=order, accepted_at__isnull=False).count() == 1


def test_the_emails_accept_link_posted_twice_charges_the_saved_card_once(
    live_tenant, smtp_mail, client_for, stripe_api_base
):
    _, bump, upsell, _ = make_catalog(with_downsell=False)
    client = client_for(HOST)
    order = buy(client, bump=bump.pk)
    _decline_the_upsell(client, order)
    first_link, _ = _emails_accept_links(smtp_mail, order)
    assert len(gw.payment_intents()) == 1  # the checkout only; the emails charge nothing

    page = client.get(first_link)
    assert page.status_code == 200
    first = client.post(f"{first_link}/accept")
    again = client.post(f"{first_link}/accept")

    assert first.status_code == 303 and first["Location"] == first_link
    assert again.status_code == 409 and b"charged only once" in again.content
    _assert_charged_once(order, upsell)
    assert b"was added to your order" in client.get(first_link).content
    assert len(gw.payment_intents()) == 2


def test_both_emails_accept_links_posted_concurrently_charge_the_saved_card_once(
    live_tenant, smtp_mail, client_for, stripe_api_base
):
    _, bump, upsell, _ = make_catalog(with_downsell=False)
    client = client_for(HOST)
    order = buy(client, bump=bump.pk)
    _decline_the_upsell(client, order)
    links = _emails_accept_links(smtp_mail, order)
    FollowUpSend.objects.filter(order=order).update(status=FollowUpStatus.SENT)
    posts = links * 3  # each email's button, clicked three times, all at once
    paths = iter(posts)  # each thread takes the next button (list iterators are thread-safe)
    codes, errors = in_threads(
        len(posts),
        lambda: client_for(HOST).post(f"{next(paths)}/accept").status_code,
        timeout=60,
    )
    assert errors == []
    assert sorted(codes) == [303] + [409] * (len(posts) - 1)
    _assert_charged_once(order, upsell)
    assert len(gw.payment_intents()) == 2
