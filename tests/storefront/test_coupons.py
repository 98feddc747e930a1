"""Coupons at checkout over the real localstripe: the discount per line, tax on what is left,
one charge of exactly that, refunds of what was paid, the guardrails on the discounted cart,
and every refusal with a clear message and nothing written."""

import datetime as dt

import pytest
from django.core import mail
from django.utils import timezone
from django_tenants.utils import schema_context

from analytics.models import Event
from core.money import Money
from offers.models import Coupon, CouponCustomerUse, CouponKind, CouponRedemption
from payments.models import LedgerEntry, LedgerKind
from storefront.models import Customer, LineKind, Order, OrderStatus
from storefront.services import receipts
from storefront.services.refunds import order_line_refund
from tests import gateway_helpers as gw
from tests.catalog import catalog
from tests.factories import CouponFactory, ProductFactory
from tests.upsell.helpers import offer_token

pytestmark = pytest.mark.gateway

HOST = "t1.localhost"


@pytest.fixture
def shop(tenant):
    return catalog(upsell=True)


def _start(client, **data):
    payload = {"email": "buyer@example.com", "country": "DE", "region": "", "save_card": "on"}
    payload.update(data)
    return client.post("/checkout/course/start", payload)


def _pay(client, body, card=gw.CARD_OK):
    order = Order.objects.get(token=body["order"])
    gw.confirm_card_setup(order.setup_ref, card)
    return client.post(body["pay_url"], {"setup_intent": order.setup_ref})


def _nothing_written(coupon: Coupon, *, orders: int = 0, redeemed: int = 0) -> None:
    assert Order.objects.count() == orders
    assert CouponRedemption.objects.filter(released_at=None).count() == redeemed
    assert Coupon.objects.get(pk=coupon.pk).times_redeemed == redeemed


def test_a_percent_coupon_discounts_core_and_bump_taxes_the_rest_and_charges_exactly_that(
    shop, client_for, stripe_api_base
):
    coupon = CouponFactory(code="SPRING20", percent_off="20.00")
    client = client_for(HOST)
    started = _start(client, bump=shop.bump.pk, add_bump="on", coupon="spring20")
    assert started.status_code == 200, started.content
    quote = started.json()["quote"]
    # 4900 − 980 = 3920 (+745 VAT), 900 − 180 = 720 (+137 VAT): tax on the discounted amount.
    assert [(line["net"], line["tax"], line["total"]) for line in quote["lines"]] == [
        (3920, 745, 4665),
        (720, 137, 857),
    ]
    assert quote["discount"] == 1160 and quote["total"] == 5522
    assert quote["coupon"] == "SPRING20" and "20% off" in quote["coupon_label"]

    paid = _pay(client, started.json())
    assert paid.json()["status"] == "paid", paid.content
    order = Order.objects.get(token=started.json()["order"])
    assert order.status == OrderStatus.PAID and order.coupon_code == "SPRING20"
    assert sorted(order.lines.values_list("kind", "discount_amount", "total_amount")) == [
        ("bump", 180, 857),
        ("core", 980, 4665),
    ]
    [intent] = gw.payment_intents()
    assert (intent.amount, intent.status) == (5522, "succeeded")
    charged = LedgerEntry.objects.filter(reference=order.reference, kind=LedgerKind.CHARGE)
    assert sum(charged.values_list("amount", flat=True)) == 5522
    redemption = CouponRedemption.objects.get(order=order)
    assert (redemption.amount, redemption.released_at) == (1160, None)
    assert Coupon.objects.get(pk=coupon.pk).times_redeemed == 1
    initiated = Event.objects.get(order_id=order.pk, name="checkout_initiated")
    assert initiated.properties == {"coupon": "SPRING20"} and initiated.amount == 5522
    assert Event.objects.get(order_id=order.pk, name="bump_accepted").amount == 720
    # The discount is its own line on the order page and the receipt.
    thanks = client.get(f"/o/{order.token}/thanks").content.decode()
    assert "Discount with coupon SPRING20, included above" in thanks and "−$11.60" in thanks
    mail.outbox = []
    assert receipts.receipt_send(order_id=order.pk)
    [receipt] = mail.outbox
    assert "Discount with coupon SPRING20: -$11.60" in receipt.body
    assert "Total charged: $55.22" in receipt.body


def test_a_fixed_coupon_is_split_across_lines_in_proportion_and_a_named_product_only_gets_its_own(
    shop, client_for, stripe_api_base
):
    CouponFactory(code="TENOFF", kind=CouponKind.FIXED, percent_off=None, amount_off=1000)
    CouponFactory(
        code="PRESETS",
        kind=CouponKind.FIXED,
        percent_off=None,
        amount_off=500,
        applies_to_all=False,
        products=[shop.bump.product],
    )
    client = client_for(HOST)
    whole = client.get(
        "/checkout/course/quote",
        {"country": "DE", "bump": shop.bump.pk, "add_bump": "on", "coupon": "TENOFF"},
    ).json()
    # 1000 split 4900 : 900 by largest remainder: 845 + 155, never a cent lost or made up.
    assert [line["net"] for line in whole["lines"]] == [4055, 745]
    assert whole["discount"] == 1000 and whole["total"] == 4055 + 770 + 745 + 142
    named = client.get(
        "/checkout/course/quote",
        {"country": "DE", "bump": shop.bump.pk, "add_bump": "on", "coupon": "PRESETS"},
    ).json()
    assert [line["net"] for line in named["lines"]] == [4900, 400]
    assert named["total"] == 4900 + 931 + 400 + 76


def test_refunding_a_discounted_line_returns_what_was_paid_for_it_with_its_tax_in_proportion(
    shop, client_for, stripe_api_base
):
    CouponFactory(code="SPRING20")
    client = client_for(HOST)
    started = _start(client, bump=shop.bump.pk, add_bump="on", coupon="SPRING20").json()
    assert _pay(client, started).json()["status"] == "paid"
    order = Order.objects.get(token=started["order"])
    bump = order.lines.get(kind=LineKind.BUMP)
    outcome = order_line_refund(
        order=order,
        line=bump,
        amount=Money(400, "USD"),
        reason="requested_by_customer",
        actor="test",
        requested_by="test",
        idempotency_key="coupon-refund-1",
    )
    [refund] = outcome.refunds
    # 400 of the 857 paid for the bump; its tax part in proportion: 137 × 400 / 857.
    assert refund.amount == 400 and refund.tax_amount == 64
    rest = order_line_refund(
        order=order,
        line=bump,
        amount=None,
        reason="requested_by_customer",
        actor="test",
        requested_by="test",
        idempotency_key="coupon-refund-2",
    ).refunds[0]
    assert rest.amount == 457  # never more than the discounted price that was charged
    assert refund.tax_amount + rest.tax_amount == 137


@pytest.mark.parametrize(
    ("make", "typed", "expected"),
    [
        (lambda: None, "NOPE", "is not valid in this store"),
        (lambda: CouponFactory(code="PAUSED", active=False), "PAUSED", "is not valid"),
        (
            lambda: CouponFactory(code="OLD", ends_at=timezone.now() - dt.timedelta(days=1)),
            "OLD",
            "has expired",
        ),
        (
            lambda: CouponFactory(code="SOON", starts_at=timezone.now() + dt.timedelta(days=2)),
            "SOON",
            "can be used from",
        ),
        (
            lambda: CouponFactory(code="GONE", max_redemptions=3, times_redeemed=3),
            "GONE",
            "used up",
        ),
        (
            lambda: CouponFactory(
                code="OTHER", applies_to_all=False, products=[ProductFactory(slug="other")]
            ),
            "OTHER",
            "does not apply to Photo course",
        ),
        (
            lambda: CouponFactory(
                code="HUGE", kind=CouponKind.FIXED, percent_off=None, amount_off=6000
            ),
            "HUGE",
            "more than the price it applies to",
        ),
        (
            lambda: CouponFactory(
                code="EUROS",
                kind=CouponKind.FIXED,
                percent_off=None,
                amount_off=500,
                currency="EUR",
            ),
            "EUROS",
            "is for prices in EUR",
        ),
        (lambda: CouponFactory(code="FREE", percent_off="100.00"), "FREE", "whole price"),
        (lambda: None, "no spaces!", "only letters, digits"),
    ],
)
def test_a_coupon_that_cannot_be_used_gets_a_clear_message_and_nothing_is_written(
    shop, client_for, stripe_api_base, make, typed, expected
):
    made = make()
    client = client_for(HOST)
    response = _start(client, coupon=typed)
    assert response.status_code == 400
    body = response.json()
    assert expected in body["error"] and expected in body["fields"]["coupon"]
    assert Order.objects.count() == 0 and Customer.objects.count() == 0
    assert CouponRedemption.objects.count() == 0 and CouponCustomerUse.objects.count() == 0
    if made is not None:
        assert Coupon.objects.get(pk=made.pk).times_redeemed == made.times_redeemed
    # The page and the live quote say the same, at the coupon field.
    page = client.get("/checkout/course/", {"coupon": typed})
    assert page.status_code == 200 and expected in page.content.decode()
    quote = client.get("/checkout/course/quote", {"country": "DE", "coupon": typed})
    assert quote.status_code == 400 and quote.json()["field"] == "coupon"


def test_another_stores_coupon_is_unknown_here(shop, client_for, stripe_api_base, other_tenant):
    with schema_context(other_tenant.schema_name):
        theirs = CouponFactory(code="THEIRS")
    response = _start(client_for(HOST), coupon="THEIRS")
    assert response.status_code == 400
    assert "is not valid in this store" in response.json()["fields"]["coupon"]
    assert Order.objects.count() == 0
    with schema_context(other_tenant.schema_name):
        assert Coupon.objects.get(pk=theirs.pk).times_redeemed == 0


def test_a_buyer_past_the_per_buyer_limit_is_refused_and_nothing_is_written(
    shop, client_for, stripe_api_base
):
    coupon = CouponFactory(code="ONCE", max_per_customer=1)
    client = client_for(HOST)
    first = _start(client, coupon="ONCE").json()
    assert _pay(client, first).json()["status"] == "paid"
    again = _start(client, coupon="once", email="Buyer@Example.com")
    assert again.status_code == 400
    assert again.json()["fields"]["coupon"] == "You have already used the coupon ONCE."
    _nothing_written(coupon, orders=1, redeemed=1)
    # Without the coupon the same buyer can still buy.
    assert _start(client).status_code == 200


def test_a_failed_payment_gives_the_use_back_and_a_restarted_checkout_replaces_the_old_hold(
    shop, client_for, stripe_api_base
):
    coupon = CouponFactory(code="ONCE", max_redemptions=1, max_per_customer=1)
    client = client_for(HOST)
    declined = _start(client, coupon="ONCE").json()
    assert _pay(client, declined, gw.CARD_DECLINE_AT_CHARGE).status_code == 402
    assert Order.objects.get(token=declined["order"]).status == OrderStatus.FAILED
    assert Coupon.objects.get(pk=coupon.pk).times_redeemed == 0
    # The buyer tries again, leaves the tab, and starts once more: one hold, the latest.
    abandoned = _start(client, coupon="ONCE").json()
    latest = _start(client, coupon="ONCE")
    assert latest.status_code == 200, latest.content
    assert Order.objects.get(token=abandoned["order"]).status == OrderStatus.FAILED
    assert Coupon.objects.get(pk=coupon.pk).times_redeemed == 1
    assert CouponCustomerUse.objects.get(coupon=coupon).uses == 1
    # The replaced checkout cannot be paid any more (its Pay finds it closed).
    closed = _pay(client, abandoned)
    assert closed.status_code >= 400 and "closed" in closed.json()["error"]
    assert _pay(client, latest.json()).json()["status"] == "paid"
    assert Coupon.objects.get(pk=coupon.pk).times_redeemed == 1


def test_the_bump_is_not_offered_when_the_coupon_makes_it_more_than_half_the_cart(
    shop, client_for, stripe_api_base
):
    CouponFactory(code="CORE90", percent_off="90.00", applies_to_all=False, products=[shop.core])
    client = client_for(HOST)
    assert 'id="bump"' in client.get("/checkout/course/").content.decode()
    page = client.get("/checkout/course/", {"coupon": "CORE90"}).content.decode()
    assert 'id="bump"' not in page and "Discount (CORE90, 90% off)" in page
    refused = _start(client, coupon="CORE90", bump=shop.bump.pk, add_bump="on")
    assert refused.status_code == 400
    assert refused.json()["fields"] == {"bump": "That add-on is not available with this coupon."}
    assert Order.objects.count() == 0


def test_the_upsell_guardrail_reads_the_discounted_cart(shop, client_for, stripe_api_base):
    # The 1200 upsell is 24% of the 4900 course, but 61% of it after 60% off.
    CouponFactory(code="CORE60", percent_off="60.00", applies_to_all=False, products=[shop.core])
    CouponFactory(code="CORE10", percent_off="10.00")
    client = client_for(HOST)
    small = _start(client, coupon="CORE60").json()
    paid = _pay(client, small).json()
    assert paid["status"] == "paid"
    # Where pay's answer sends the buyer: the post-purchase page, which has nothing to show.
    assert client.get(paid["next"])["Location"] == f"/o/{small['order']}/thanks"
    assert client.get(f"/o/{small['order']}/next")["Location"].endswith("/thanks")
    other = client_for(HOST)
    fine = _start(other, coupon="CORE10", email="second@example.com").json()
    paid = _pay(other, fine).json()
    assert paid["status"] == "paid" and paid["next"] == f"/o/{fine['order']}/offer"
    assert other.get(f"/o/{fine['order']}/next")["Location"].endswith("/offer")
    assert offer_token(other, Order.objects.get(token=fine["order"]))


def test_a_coupon_link_on_the_product_page_is_applied_at_checkout_and_can_be_removed(
    shop, client_for, stripe_api_base
):
    CouponFactory(code="SPRING20")
    client = client_for(HOST)
    client.get("/p/course/?coupon=SPRING20")
    page = client.get("/checkout/course/").content.decode()
    assert 'value="SPRING20"' in page and "Discount (SPRING20, 20% off)" in page
    # The buyer empties the field and updates the total (no JavaScript): no discount.
    cleared = client.post("/checkout/course/", {"country": "DE", "coupon": ""}).content.decode()
    assert "Discount (SPRING20" not in cleared


def test_a_payment_that_succeeds_after_the_order_failed_takes_its_coupon_use_again(shop):
    from offers.coupons import coupon_redeem
    from storefront.services.orders import order_status_move

    coupon = CouponFactory(code="LATE", max_redemptions=1)
    buyer = Customer.objects.create(email="late@example.com")
    order = Order.objects.create(
        token="late", customer=buyer, currency="USD", country="DE", coupon_code="LATE"
    )
    coupon_redeem(coupon=coupon, order_id=order.pk, customer_id=buyer.pk, amount=Money(980, "USD"))
    assert order_status_move(order=order, to=OrderStatus.FAILED)
    assert Coupon.objects.get(pk=coupon.pk).times_redeemed == 0
    assert order_status_move(order=order, to=OrderStatus.FAILED) is False  # nothing twice
    assert Coupon.objects.get(pk=coupon.pk).times_redeemed == 0
    # The gateway's late answer: paid after all, at the discounted price. The use is held again.
    assert order_status_move(order=order, to=OrderStatus.PAID, paid_at=timezone.now())
    assert Coupon.objects.get(pk=coupon.pk).times_redeemed == 1
    assert CouponCustomerUse.objects.get(coupon=coupon, customer=buyer).uses == 1
    assert CouponRedemption.objects.get(order=order).released_at is None
