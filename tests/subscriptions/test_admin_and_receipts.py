"""The creator's admin of subscriptions (state and history, refund the last payment, cancel,
pause) and the signed link to the buyer's subscriptions in every receipt."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

from audit.models import AuditEntry
from payments.models import LedgerEntry, LedgerKind
from storefront.services import receipts
from subscriptions import services
from subscriptions.models import Subscription, SubscriptionStatus
from tests.subscriptions.helpers import at, plan, start

pytestmark = pytest.mark.gateway
CHANGELIST = "/admin/subscriptions/subscription/"


@pytest.fixture
def staff(tenant, client_for):
    client = client_for("t1.localhost")
    client.force_login(get_user_model().objects.get(email="owner@t1.example"))
    return client


def _act(staff, action, sub):
    return staff.post(
        CHANGELIST, {"action": action, "_selected_action": [sub.pk], "index": 0}, follow=True
    )


def test_the_admin_lists_state_and_history_and_refunds_the_last_payment(tenant, staff):
    sub = start(plan(price=1500, name="Monthly club"), started_at=at(2027, 1, 31))
    services.renewals_run(now=at(2027, 2, 28, 13))
    listing = staff.get(CHANGELIST).content.decode()
    assert "Monthly club" in listing and "Active" in listing
    detail = staff.get(f"{CHANGELIST}{sub.pk}/change/").content.decode()
    assert "period 1" in detail and "2027-02-28" in detail  # history and the periods
    page = _act(staff, "refund_last", sub)
    assert page.status_code == 200 and "1 subscription(s) refunded" in page.content.decode()
    refunds = LedgerEntry.objects.filter(kind=LedgerKind.REFUND, reference=sub.reference)
    assert [r.amount for r in refunds] == [1500]
    sub.refresh_from_db()
    assert sub.status == SubscriptionStatus.CANCELED and sub.end_reason == "refunded"
    assert AuditEntry.objects.filter(action="subscriptions.refund_last").count() == 1
    # A second refund of the same period is refused with a reason, nothing more refunded.
    page = _act(staff, "refund_last", sub)
    assert refunds.count() == 1


def test_pause_restart_and_cancel_from_the_admin(tenant, staff):
    sub = start(plan(price=1500), started_at=at(2027, 1, 31))
    _act(staff, "pause", sub)
    assert Subscription.objects.get().status == SubscriptionStatus.PAUSED
    _act(staff, "unpause", sub)
    assert Subscription.objects.get().status == SubscriptionStatus.ACTIVE
    _act(staff, "cancel_now", sub)
    assert Subscription.objects.get().status == SubscriptionStatus.CANCELED
    assert AuditEntry.objects.filter(action__contains="cancel_now").exists()


def test_every_receipt_links_to_the_buyers_subscriptions_and_the_page_cancels_and_resumes(
    tenant, client_for
):
    from tests.upsell.helpers import buy, make_catalog

    core, *_ = make_catalog(with_downsell=False)
    from subscriptions.models import Plan

    Plan.objects.create(product=core, kind="subscription", interval_unit="month")
    order = buy(client_for("t1.localhost"))
    mail.outbox = []
    assert receipts.receipt_send(order_id=order.pk)
    link = re.search(r"https?://\S+/account/subscriptions/\S+/", mail.outbox[0].body).group(0)
    path = "/" + link.split("/", 3)[3]
    client = client_for("t1.localhost")
    page = client.get(path).content.decode()
    assert "Photo course" in page and "Cancel at the end of the period" in page
    sub = Subscription.objects.get()
    done = client.post(f"{path}{sub.pk}/cancel/", follow=True)
    assert "will end at the end of the period" in done.content.decode()
    sub.refresh_from_db()
    assert sub.cancel_at_period_end and sub.status == SubscriptionStatus.ACTIVE
    assert client.post(f"{path}{sub.pk}/resume/").status_code == 302
    sub.refresh_from_db()
    assert not sub.cancel_at_period_end
    again = client.post(f"{path}{sub.pk}/resume/")
    assert again.status_code == 409 and "no pending cancellation" in again.content.decode()
    assert sorted(sub.notices.values_list("kind", flat=True)) == [
        "cancel_confirmed",
        "resume_confirmed",
    ]


def test_a_plan_with_subscribers_cannot_be_deleted_and_one_without_can(tenant, staff):
    """Downloads of a subscription are checked against it only for products with a plan
    (storefront.services.subscribe.line_access_allowed): the plan must outlive its
    subscribers."""
    from subscriptions.models import Plan

    taken = plan(price=1500, name="Club")
    start(taken, started_at=at(2027, 1, 31))
    unused = plan(price=900, name="Unsold club")
    url = "/admin/subscriptions/plan/{}/delete/"
    assert staff.get(url.format(taken.pk)).status_code == 403
    assert staff.post(url.format(taken.pk), {"post": "yes"}).status_code == 403
    assert staff.post(url.format(unused.pk), {"post": "yes"}).status_code == 302
    assert list(Plan.objects.values_list("pk", flat=True)) == [taken.pk]
