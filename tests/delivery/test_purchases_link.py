"""The buyer's purchases by magic link: email in, signed link out, no account, no enumeration;
mails through a real local SMTP server."""

import re
import time

import pytest
from django.core import signing
from django.db import connection

from core.models import OutboxMessage
from storefront import tasks
from storefront.models import Order, OrderStatus
from storefront.services import buyer_links
from tests.delivery_support import paid_order
from tests.factories import ProductFactory
from tests.followups.smtp import text_of


def _request(client, email):
    return client.post("/purchases/", {"email": email})


def _run_queued() -> list:
    """Run the queued mail tasks as a worker would (in tests the outbox is not drained)."""
    results = []
    for message in OutboxMessage.objects.filter(task_name="storefront.purchases_link_send"):
        results.append(tasks.purchases_link_send(**message.kwargs))
        message.delete()
    return results


def _visible(response) -> str:
    """The page without its CSRF token (different per response) and the typed address."""
    page = response.content.decode()
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", page)


def test_a_known_and_an_unknown_email_get_the_same_answer_and_only_the_buyer_gets_mail(
    tenant, client_for, smtp_mail
):
    paid_order(products=[ProductFactory(name="Course")], email="fan@example.com")
    client = client_for("t1.localhost")
    known = _request(client, "Fan@Example.com")
    unknown = _request(client, "nobody@example.com")
    assert known.status_code == unknown.status_code == 200
    assert _visible(known).replace("Fan@Example.com", "X") == _visible(unknown).replace(
        "nobody@example.com", "X"
    )
    # The same work is queued either way; only the task looks the address up.
    assert OutboxMessage.objects.filter(task_name="storefront.purchases_link_send").count() == 2
    assert sorted(_run_queued()) == [False, True]
    [message] = smtp_mail.messages
    assert message["To"] == "fan@example.com"
    body = text_of(message)
    link = re.search(r"http://[^\s]+/purchases/[^\s]+", body).group(0)
    assert link.startswith("http://t1.localhost/purchases/")


def test_the_link_lists_the_buyers_paid_orders_in_this_store_only(tenant, client_for):
    product = ProductFactory(name="Course")
    mine = paid_order(products=[product], email="fan@example.com")
    refunded = paid_order(products=[product], email="fan@example.com")
    Order.objects.filter(pk=refunded.pk).update(status=OrderStatus.REFUNDED)
    pending = paid_order(products=[product], email="fan@example.com")
    Order.objects.filter(pk=pending.pk).update(status=OrderStatus.PENDING)
    someone_else = paid_order(products=[product], email="other@example.com")
    token = buyer_links.purchases_token(email="fan@example.com", schema=connection.schema_name)
    response = client_for("t1.localhost").get(f"/purchases/{token}")
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    page = response.content.decode()
    assert f"/o/{mine.token}/" in page and f"/o/{refunded.token}/" in page
    assert "(refunded)" in page
    assert pending.token not in page and someone_else.token not in page


def test_tampered_foreign_and_expired_links_show_nothing(tenant, client_for, monkeypatch):
    paid_order(products=[ProductFactory()], email="fan@example.com")
    client = client_for("t1.localhost")
    good = buyer_links.purchases_token(email="fan@example.com", schema="t1")
    tampered_email = signing.TimestampSigner(salt="x").sign_object(
        {"s": "t1", "e": "fan@example.com"}
    )
    other_store = buyer_links.purchases_token(email="fan@example.com", schema="t2")
    for token in (good[:-2] + "zz", tampered_email, other_store, "nothing", "a:b"):
        response = client.get(f"/purchases/{token}")
        assert response.status_code == 403, token
        assert "fan@example.com" not in response.content.decode()
    monkeypatch.setattr(buyer_links, "PURCHASES_LINK_MAX_AGE", 1)
    time.sleep(2.1)
    expired = client.get(f"/purchases/{good}")
    assert expired.status_code == 403 and b"expired" in expired.content
    assert b"/purchases/" in expired.content  # a way to ask for a new one


@pytest.mark.parametrize("email", ["", "not-an-email", "a@b", "x" * 300 + "@example.com"])
def test_a_bad_email_is_a_400_with_the_reason_and_nothing_is_queued(tenant, client_for, email):
    response = _request(client_for("t1.localhost"), email)
    assert (
        response.status_code == 400
        and b"valid email" in response.content
        or (response.status_code == 400 and b"field-error" in response.content)
    )
    assert not OutboxMessage.objects.filter(task_name="storefront.purchases_link_send").exists()


def test_a_buyer_of_another_store_gets_no_mail_from_this_one(
    tenant, other_tenant, client_for, smtp_mail
):
    from django_tenants.utils import schema_context

    with schema_context("t2"):
        paid_order(products=[ProductFactory()], email="fan@example.com")
    connection.set_tenant(tenant)
    _request(client_for("t1.localhost"), "fan@example.com")
    connection.set_tenant(tenant)
    assert _run_queued() == [False]
    assert smtp_mail.messages == []


def test_requests_for_one_address_are_rate_limited(tenant, client_for):
    client = client_for("t1.localhost")
    answers = [_request(client, "fan@example.com").status_code for _ in range(4)]
    assert answers[:3] == [200, 200, 200] and answers[3] == 429
