"""Subscriptions in the partner API (list, read, cancel with an Idempotency-Key) and the
outbound subscription.created / .renewed / .past_due / .canceled webhooks."""

import pytest

from core.models import OutboxMessage
from partners.models import ApiKey, WebhookDelivery, WebhookSubscription
from partners.services import api_key_create
from subscriptions import services
from subscriptions.models import Subscription, SubscriptionStatus
from tests.api import test_webhooks
from tests.subscriptions.helpers import at, plan, start

pytestmark = pytest.mark.gateway
HOST = "t1.localhost"


@pytest.fixture
def keys(tenant):
    return (
        api_key_create(name="w", scope=ApiKey.Scope.WRITE).token,
        api_key_create(name="r", scope=ApiKey.Scope.READ).token,
    )


def _run_notices() -> int:
    """The queued notices, then the renewals' messages (the renewed webhook and the receipt
    in one, subscriptions.renewed), each once as the worker runs them."""
    from subscriptions.tasks import renewed

    ran = test_webhooks._run_notices()
    for message in OutboxMessage.objects.filter(
        task_name="subscriptions.renewed", dispatched_at__isnull=True
    ).order_by("pk"):
        renewed.apply(kwargs=message.kwargs, throw=True)
        OutboxMessage.objects.filter(pk=message.pk).update(dispatched_at=message.created_at)
        ran += 1
    return ran


class api:  # noqa: N801 - reads like the client it wraps
    def __init__(self, client_for, token):
        self.client = client_for(HOST)
        self.client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"

    def get(self, url):
        return self.client.get(url)

    def post(self, url, body, **headers):
        return self.client.post(url, body, content_type="application/json", **headers)


def test_partners_list_read_and_cancel_with_an_idempotency_key(tenant, client_for, keys):
    write, read = keys
    sub = start(plan(price=1500), started_at=at(2027, 1, 31))
    listed = api(client_for, read).get("/api/v1/subscriptions/?status=active").json()
    assert [row["id"] for row in listed["results"]] == [sub.pk]
    one = api(client_for, read).get(f"/api/v1/subscriptions/{sub.pk}/").json()
    assert one["amount"] == 1500 and one["next_charge_at"].startswith("2027-02-28")
    url = f"/api/v1/subscriptions/{sub.pk}/cancel/"
    assert api(client_for, read).post(url, {}, HTTP_IDEMPOTENCY_KEY="k1").status_code == 403
    missing = api(client_for, write).post(url, {})
    assert missing.status_code == 400 and "Idempotency-Key" in missing.content.decode()
    first = api(client_for, write).post(url, {"when": "period_end"}, HTTP_IDEMPOTENCY_KEY="k1")
    again = api(client_for, write).post(url, {"when": "period_end"}, HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == 200 and first.json()["cancel_at_period_end"] is True
    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    other = api(client_for, write).post(url, {"when": "now"}, HTTP_IDEMPOTENCY_KEY="k1")
    assert other.status_code == 409  # the same key with another body
    now = api(client_for, write).post(url, {"when": "now"}, HTTP_IDEMPOTENCY_KEY="k2")
    assert now.status_code == 200 and now.json()["status"] == "canceled"
    ended = api(client_for, write).post(url, {"when": "now"}, HTTP_IDEMPOTENCY_KEY="k3")
    assert ended.status_code == 409 and "already ended" in ended.content.decode()
    bad = api(client_for, write).post(url, {"when": "tomorrow"}, HTTP_IDEMPOTENCY_KEY="k4")
    assert bad.status_code == 400
    assert Subscription.objects.get().status == SubscriptionStatus.CANCELED


def test_another_stores_key_sees_none_of_them(tenant, other_tenant, client_for, keys):
    from django.db import connection

    sub = start(plan(price=1500), started_at=at(2027, 1, 31))
    connection.set_tenant(other_tenant)
    foreign = api_key_create(name="x", scope=ApiKey.Scope.READ).token
    connection.set_tenant(tenant)
    client = client_for("t2.localhost")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {foreign}"
    assert client.get(f"/api/v1/subscriptions/{sub.pk}/").status_code == 404
    assert client.get("/api/v1/subscriptions/").json()["results"] == []


def test_each_change_is_one_webhook(tenant):
    WebhookSubscription.objects.create(
        url="https://partner.example/hook", event_types=["*"], secret="whsec_x"
    )
    sub = start(plan(price=1500), started_at=at(2027, 1, 31), card="4000000000000341")
    services.renewals_run(now=at(2027, 2, 28, 13))  # declined: past due
    services.subscription_cancel_now(subscription_id=sub.pk, by="creator")
    _run_notices()
    _run_notices()  # a task run twice is no second delivery
    names = sorted(WebhookDelivery.objects.values_list("event_name", flat=True))
    assert names == ["subscription.canceled", "subscription.created", "subscription.past_due"]
    ok = start(plan(price=900), started_at=at(2027, 1, 31), email="ok@example.com")
    services.renewals_run(now=at(2027, 2, 28, 13))
    services.renewals_run(now=at(2027, 3, 31, 13))
    _run_notices()
    renewed = WebhookDelivery.objects.filter(event_name="subscription.renewed")
    assert renewed.count() == 2
    assert all(d.payload["id"] == ok.pk for d in renewed)
    assert not OutboxMessage.objects.filter(
        task_name="analytics.notice_dispatch", dispatched_at__isnull=True
    ).exists()
