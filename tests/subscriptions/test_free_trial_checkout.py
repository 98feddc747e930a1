"""A free trial without a setup fee through the hosted checkout: the card is set up (a
SetupIntent) and saved, nothing is charged and no payment exists; the order is settled at 0,
the subscription trials on the saved card, the receipt says when the first charge comes, and
the renewal job charges it once at the trial's end. Over the local Stripe server."""

import datetime as dt

import pytest
from django.core import mail
from django.urls import reverse

from payments.models import ChargeAttempt, LedgerEntry, SavedPaymentMethod
from storefront.models import Order, OrderStatus
from storefront.services import delivery, receipts
from subscriptions import services
from subscriptions.models import Plan, Subscription, SubscriptionStatus
from tests import gateway_helpers as gw
from tests.factories import CouponFactory
from tests.subscriptions.helpers import gateway_charges, ledger_charges
from tests.upsell.helpers import buy, make_catalog

pytestmark = pytest.mark.gateway
HOST = "t1.localhost"


def trial(product, **kw):
    return Plan.objects.create(
        product=product,
        kind="subscription",
        interval_unit="month",
        interval_count=1,
        trial_days=7,
        **kw,
    )


def _start(client, **extra):
    data = {"email": "t@example.com", "country": "DE", "region": "", **extra}
    return client.post("/checkout/course/start", data)


def test_the_card_is_saved_nothing_is_charged_and_the_trial_end_charges_once(tenant, client_for):
    core, *_ = make_catalog(with_downsell=False)
    trial(core)
    client = client_for(HOST)
    started = _start(client)  # the one-click box left unticked: the trial's card is saved anyway
    assert started.status_code == 200, started.content
    body = started.json()
    assert body["quote"]["total"] == 0
    order = Order.objects.get(token=body["order"])
    assert gw.confirm_card_setup(order.setup_ref, gw.CARD_OK) == "succeeded"
    paid = client.post(body["pay_url"], {"setup_intent": order.setup_ref})
    assert paid.status_code == 200 and paid.json()["status"] == "paid", paid.content
    # A double submit answers the same and starts nothing twice.
    again = client.post(body["pay_url"], {"setup_intent": order.setup_ref})
    assert again.status_code == 200 and again.json()["status"] == "paid"

    order.refresh_from_db()
    assert order.status == OrderStatus.PAID and order.paid_at is not None
    assert not order.card_saved  # no consent to one-click offers was assumed
    assert order.lines.get().total_amount == 0
    assert gw.payment_intents() == [] and ChargeAttempt.objects.count() == 0
    assert LedgerEntry.objects.count() == 0
    method = SavedPaymentMethod.objects.get()
    assert "free trial" in method.consent_text
    sub = Subscription.objects.get()
    assert sub.status == SubscriptionStatus.TRIALING and sub.order_id == order.pk
    assert sub.payment_method_ref == method.gateway_ref and sub.amount == 5831
    assert sub.next_charge_at == order.paid_at + dt.timedelta(days=7) == sub.trial_ends_at

    # The buyer owns what the order bought during the trial.
    line = order.lines.get()
    download = client.get(
        reverse("line-download", args=[delivery.download_token(line=line, schema="t1")])
    )
    assert download.status_code == 302

    mail.outbox = []
    assert receipts.receipt_send(order_id=order.pk)
    text = mail.outbox[0].body
    first = f"{sub.trial_ends_at:%-d %B %Y}"
    assert "nothing charged today (free trial)" in text
    assert f"First charge of $58.31 on {first}, then every month" in text
    html = mail.outbox[0].alternatives[0][0]
    assert "nothing charged today" in html and first in html

    services.renewals_run(now=sub.next_charge_at - dt.timedelta(minutes=1))
    assert gw.payment_intents() == []
    services.renewals_run(now=sub.next_charge_at)
    services.renewals_run(now=sub.next_charge_at + dt.timedelta(minutes=5))
    sub.refresh_from_db()
    assert sub.status == SubscriptionStatus.ACTIVE and sub.next_period == 1
    charges = gateway_charges(sub)
    assert len(charges) == 1 and charges[0][1] == 5831
    assert ledger_charges(sub) == charges


def test_the_checkout_page_says_nothing_is_charged_today_and_names_the_first_charge(
    tenant, client_for
):
    core, *_ = make_catalog(with_downsell=False)
    trial(core)
    page = client_for(HOST).get("/checkout/course/?country=DE").content.decode()
    assert "Start free trial" in page and "nothing today" in page
    assert "free for 7 days, then" in page and "every month until you cancel" in page


def test_a_coupon_on_a_free_trial_is_refused_with_a_reason_and_nothing_is_written(
    tenant, client_for
):
    core, *_ = make_catalog(with_downsell=False)
    trial(core)
    CouponFactory(code="TENOFF")
    response = _start(client_for(HOST), coupon="TENOFF", save_card="on")
    assert response.status_code == 400
    assert "nothing for a coupon to take off" in response.json()["fields"]["coupon"]
    assert Order.objects.count() == 0 and Subscription.objects.count() == 0


def test_a_coupon_taking_off_the_whole_price_is_refused_with_a_reason(tenant, client_for):
    make_catalog(with_downsell=False)
    CouponFactory(code="ALLOFF", percent_off=100)
    response = _start(client_for(HOST), coupon="ALLOFF", save_card="on")
    assert response.status_code == 400
    assert "would take off the whole price" in response.json()["fields"]["coupon"]
    assert Order.objects.count() == 0 and gw.payment_intents() == []


def test_a_paid_bump_with_a_free_trial_is_one_payment_and_the_trial_runs(tenant, client_for):
    core, bump, _, _ = make_catalog(with_downsell=False)
    trial(core)
    order = buy(client_for(HOST), bump=bump.pk)
    intents = gw.payment_intents()
    assert len(intents) == 1 and intents[0].amount == order.lines.get(kind="bump").total_amount
    assert order.lines.get(kind="core").total_amount == 0
    sub = Subscription.objects.get()
    assert sub.status == SubscriptionStatus.TRIALING and sub.product_id == core.pk


def test_a_free_trial_order_gets_no_one_click_offer(tenant, client_for):
    core, *_ = make_catalog(with_downsell=False)
    trial(core)
    client = client_for(HOST)
    order = buy(client)  # the one-click box ticked: the card is saved for offers too
    assert order.card_saved and order.status == OrderStatus.PAID
    assert client.get(f"/o/{order.token}/next")["Location"].endswith("/thanks")
    assert client.get(f"/o/{order.token}/offer").status_code in (302, 303, 404)
    assert gw.payment_intents() == []


def test_a_trial_whose_plan_changed_before_pay_is_refused_and_nothing_starts(tenant, client_for):
    core, *_ = make_catalog(with_downsell=False)
    plan = trial(core)
    client = client_for(HOST)
    body = _start(client).json()
    order = Order.objects.get(token=body["order"])
    gw.confirm_card_setup(order.setup_ref, gw.CARD_OK)
    plan.trial_days = 0
    plan.save()  # the creator ends the trial offer while the buyer is on the page
    paid = client.post(body["pay_url"], {"setup_intent": order.setup_ref})
    assert paid.status_code == 400 and "terms changed" in paid.json()["error"]
    order.refresh_from_db()
    assert order.status == OrderStatus.FAILED and Subscription.objects.count() == 0
    assert gw.payment_intents() == [] and SavedPaymentMethod.objects.count() == 0
