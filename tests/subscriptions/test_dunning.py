"""Dunning: a failed renewal makes the subscription past due, retries on the store's schedule
with an email before each retry carrying a card-update link; a card updated meanwhile retries
at once; after the last retry it is cancelled or marked unpaid, as the creator chose."""

import datetime as dt
import re

import pytest

from payments.models import AttemptStatus, ChargeAttempt
from subscriptions import notices, services
from subscriptions.models import (
    DunningSettings,
    Notice,
    PeriodStatus,
    Subscription,
    SubscriptionStatus,
)
from tests import gateway_helpers as gw
from tests.subscriptions.helpers import (
    at,
    gateway_charges,
    ledger_charges,
    new_card,
    plan,
    start,
)

pytestmark = pytest.mark.gateway
CARD_DECLINE = "4000000000000341"
HOST = "t1.localhost"
LINK_RE = re.compile(r"https?://\S+/account/subscriptions/\S+/\d+/card/")


def send_all() -> int:
    sent = 0
    for pk in (
        Notice.objects.filter(sent_at__isnull=True).order_by("pk").values_list("pk", flat=True)
    ):
        sent += notices.notice_send(notice_id=pk)
    return sent


def test_a_failed_renewal_emails_a_card_link_and_a_new_card_retries_at_once(
    tenant, smtp_mail, client_for
):
    sub = start(plan(price=1900, name="Community"), started_at=at(2027, 1, 31), card=CARD_DECLINE)
    services.renewals_run(now=at(2027, 2, 28, 13))
    sub.refresh_from_db()
    period = sub.periods.get(number=1)
    assert sub.status == SubscriptionStatus.PAST_DUE
    assert period.status == PeriodStatus.FAILED and period.tries == 1
    assert period.next_retry_at == at(2027, 2, 28) + dt.timedelta(days=1)
    assert send_all() == 1
    (mail,) = smtp_mail.messages
    assert mail["To"] == "sub@example.com" and "did not go through" in mail["Subject"]
    body = mail.get_content()
    assert "$19.00" in body and "Community" in body
    link = LINK_RE.search(body).group(0)
    path = "/" + link.split("/", 3)[3]

    client = client_for(HOST)
    page = client.get(path)
    assert page.status_code == 200
    setup_ref = re.search(r'data-setup="([^"]+)"', page.content.decode()).group(1)
    assert gw.confirm_card_setup(setup_ref, gw.CARD_OK) == "succeeded"  # Stripe.js, in the page
    answer = client.post(path, {"setup_ref": setup_ref})
    assert answer.status_code == 200, answer.content
    assert answer.json()["retry"] == "succeeded" and answer.json()["status"] == "active"

    sub.refresh_from_db()
    period.refresh_from_db()
    assert period.status == PeriodStatus.PAID and period.tries == 2
    assert sub.status == SubscriptionStatus.ACTIVE and sub.next_charge_at == at(2027, 3, 31)
    assert ledger_charges(sub) == gateway_charges(sub) and len(ledger_charges(sub)) == 1
    # The scheduled retry finds nothing left to do; the confirmation emails go out once.
    services.renewals_run(now=at(2027, 3, 2))
    assert ChargeAttempt.objects.filter(status=AttemptStatus.SUCCEEDED).count() == 1
    send_all()
    send_all()
    subjects = [m["Subject"] for m in smtp_mail.messages]
    assert subjects.count("Your card was updated") == 1
    assert subjects.count("Receipt for your subscription") == 1


def test_after_the_last_retry_the_subscription_is_cancelled_and_access_stops(tenant, smtp_mail):
    sub = start(plan(price=1900), started_at=at(2027, 1, 31), card=CARD_DECLINE)
    services.renewals_run(now=at(2027, 2, 28, 13))
    due = sub.periods.get(number=1).starts_at
    retry_times = []
    for _ in range(4):
        period = sub.periods.get(number=1)
        assert period.status == PeriodStatus.FAILED
        retry_times.append(period.next_retry_at)
        services.renewals_run(now=period.next_retry_at - dt.timedelta(minutes=1))  # not yet
        assert sub.periods.get(number=1).tries == period.tries
        services.renewals_run(now=period.next_retry_at)
    assert [t - due for t in retry_times] == [dt.timedelta(days=d) for d in (1, 3, 5, 7)]
    sub.refresh_from_db()
    period = sub.periods.get(number=1)
    assert period.status == PeriodStatus.ABANDONED and period.tries == 5
    assert sub.status == SubscriptionStatus.CANCELED and sub.end_reason == "dunning"
    assert ChargeAttempt.objects.filter(status=AttemptStatus.DECLINED).count() == 5
    assert gateway_charges(sub) == [] == ledger_charges(sub)
    send_all()
    subjects = [m["Subject"] for m in smtp_mail.messages]
    assert subjects.count("Your payment did not go through: update your card") == 4
    assert subjects[-1] == "Your subscription has been cancelled"
    services.renewals_run(now=at(2027, 6, 1))
    assert ChargeAttempt.objects.count() == 5  # nothing more once cancelled


def test_a_store_can_choose_its_schedule_and_to_mark_the_subscription_unpaid(tenant):
    settings_row = DunningSettings.current()
    settings_row.retry_days = [2]
    settings_row.final_action = "unpaid"
    settings_row.save()
    sub = start(plan(price=1900), started_at=at(2027, 1, 31), card=CARD_DECLINE)
    services.renewals_run(now=at(2027, 2, 28, 13))
    period = sub.periods.get(number=1)
    assert period.next_retry_at == period.starts_at + dt.timedelta(days=2)
    services.renewals_run(now=period.next_retry_at)
    sub.refresh_from_db()
    assert sub.status == SubscriptionStatus.UNPAID and sub.next_charge_at is None
    # The buyer comes back with a working card: the given-up period is billed at once.
    services.subscription_card_update(
        subscription_id=sub.pk, payment_method_ref=new_card(sub.customer_ref)
    )
    sub.refresh_from_db()
    assert sub.status == SubscriptionStatus.ACTIVE
    assert sub.periods.get(number=1).status == PeriodStatus.PAID
    assert len(gateway_charges(sub)) == 1 == len(ledger_charges(sub))


def test_a_card_set_up_for_someone_else_is_refused_on_the_card_update_page(
    tenant, smtp_mail, client_for
):
    from payments import services as payments
    from payments.models import SavedPaymentMethod

    sub = start(plan(price=1900, name="Community"), started_at=at(2027, 1, 31), card=CARD_DECLINE)
    services.renewals_run(now=at(2027, 2, 28, 13))
    assert send_all() == 1
    link = LINK_RE.search(smtp_mail.messages[0].get_content()).group(0)
    path = "/" + link.split("/", 3)[3]
    client = client_for(HOST)
    assert client.get(path).status_code == 200
    # Another buyer's confirmed setup (its ref is all the form sends).
    other = payments.gateway_customer_get_or_create(email="other@example.com")
    theirs = payments.card_setup_create(customer=other, idempotency_key="other-setup")
    assert gw.confirm_card_setup(theirs.setup_ref, gw.CARD_OK) == "succeeded"
    saved = set(SavedPaymentMethod.objects.values_list("gateway_ref", flat=True))

    answer = client.post(path, {"setup_ref": theirs.setup_ref})
    assert answer.status_code == 400 and "did not finish" in answer.json()["error"]
    assert set(SavedPaymentMethod.objects.values_list("gateway_ref", flat=True)) == saved
    sub.refresh_from_db()
    assert sub.status == SubscriptionStatus.PAST_DUE
    assert not ChargeAttempt.objects.filter(status=AttemptStatus.SUCCEEDED).exists()


def test_two_card_updates_at_once_make_one_retry(tenant):
    sub = start(plan(price=1900), started_at=at(2027, 1, 31), card=CARD_DECLINE)
    services.renewals_run(now=at(2027, 2, 28, 13))
    card = new_card(sub.customer_ref)
    services.subscription_card_update(subscription_id=sub.pk, payment_method_ref=card)
    services.subscription_card_update(subscription_id=sub.pk, payment_method_ref=card)
    assert len(gateway_charges(sub)) == 1
    assert sub.periods.get(number=1).tries == 2


def test_the_card_expiry_is_read_from_the_gateway(tenant):
    sub = start(plan(price=1900), started_at=at(2027, 1, 31))
    services.renewals_run(now=at(2027, 1, 31, 13))
    sub.refresh_from_db()
    assert (sub.card_exp_month, sub.card_exp_year) == (12, 2034)  # as confirm_card_setup saved


def test_a_card_expiring_within_30_days_gets_one_reminder(tenant, smtp_mail):
    sub = start(plan(price=1900), started_at=at(2027, 1, 31))
    type(sub).objects.filter(pk=sub.pk).update(card_exp_month=3, card_exp_year=2027)
    services.renewals_run(now=at(2027, 2, 15))  # 31 March is more than 30 days away
    assert Notice.objects.filter(kind="card_expiring").count() == 0
    services.renewals_run(now=at(2027, 3, 2))
    services.renewals_run(now=at(2027, 3, 3))
    assert Notice.objects.filter(kind="card_expiring").count() == 1
    send_all()
    subjects = [m["Subject"] for m in smtp_mail.messages]
    assert subjects.count("Your card expires soon") == 1


def test_a_forged_or_foreign_manage_link_is_refused(tenant, client_for):
    sub = start(plan(price=1900), started_at=at(2027, 1, 31))
    client = client_for(HOST)
    other = notices.manage_token(customer_id=sub.customer_id, schema="t2")
    for token in ("nonsense", other):
        response = client.get(f"/account/subscriptions/{token}/")
        assert response.status_code == 403
        assert "not valid" in response.content.decode()
    good = notices.manage_token(customer_id=sub.customer_id + 1, schema="t1")
    assert client.get(f"/account/subscriptions/{good}/{sub.pk}/card/").status_code == 403


def test_a_subscription_in_dunning_is_on_the_admin_homes_needs_attention(tenant, client_for):
    """A failed renewal puts the subscription in dunning; the owner's home says so and links
    to those subscriptions; once it is paid again, the line goes."""
    from django.contrib.auth import get_user_model

    start(plan(price=1900, name="Community"), started_at=at(2027, 1, 31))
    failing = start(
        plan(price=900, name="Club"),
        started_at=at(2027, 1, 31),
        email="d@example.com",
        card=CARD_DECLINE,
    )
    services.renewals_run(now=at(2027, 2, 28, 13))
    get_user_model().objects.create_superuser("boss", "boss@example.com", "boss-pass-1")
    owner = client_for(HOST)
    assert owner.login(username="boss", password="boss-pass-1")
    page = owner.get("/admin/")
    [dunning] = [a for a in page.context["attention"] if a.key == "dunning"]
    assert dunning.count == 1 and "1 subscription in dunning" in dunning.text
    link = "/admin/subscriptions/subscription/?status__exact=past_due"
    assert dunning.url == link and f'href="{link}"' in page.content.decode()
    assert owner.get(link).status_code == 200
    Subscription.objects.filter(pk=failing.pk).update(status=SubscriptionStatus.ACTIVE)
    page = owner.get("/admin/")
    assert "dunning" not in {a.key for a in page.context["attention"]}
