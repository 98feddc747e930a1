"""A checkout left unpaid gives its coupon use back after COUPON_HOLD_MINUTES
(storefront.services.coupon_holds); a Pay after that takes it again or is refused before any
charge; a Pay and the release racing for the order never both win."""

import datetime as dt
import threading
import time

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from offers.models import Coupon, CouponRedemption
from payments import services as payments_services
from payments.models import ChargeAttempt
from storefront.models import Order, OrderStatus
from storefront.services import coupon_holds
from tests import gateway_helpers as gw
from tests.catalog import catalog
from tests.factories import CouponFactory

pytestmark = pytest.mark.gateway
HOST = "t1.localhost"


def _start(email: str, code: str = "ONE") -> tuple[Client, dict]:
    client = Client(HTTP_HOST=HOST)
    response = client.post(
        "/checkout/course/start", {"email": email, "country": "DE", "coupon": code}
    )
    return client, {"status": response.status_code, **response.json()}


def _pay(client: Client, started: dict):
    order = Order.objects.get(token=started["order"])
    assert gw.confirm_card_setup(order.setup_ref) == "succeeded"
    return client.post(started["pay_url"], {"setup_intent": order.setup_ref})


def _later(minutes: int) -> dt.datetime:
    return timezone.now() + dt.timedelta(minutes=minutes)


def _times_redeemed(coupon) -> int:
    return Coupon.objects.get(pk=coupon.pk).times_redeemed


def test_a_checkout_left_unpaid_gives_its_use_back_and_a_late_pay_is_refused_if_it_is_gone(
    tenant, stripe_api_base, settings
):
    settings.COUPON_HOLD_MINUTES = 60
    catalog(bump=False)
    coupon = CouponFactory(code="ONE", max_redemptions=1)
    client_a, started_a = _start("ann@example.com")
    assert started_a["status"] == 200 and _times_redeemed(coupon) == 1
    _, refused = _start("ben@example.com")
    assert refused["status"] == 400 and "used up" in refused["fields"]["coupon"], refused

    assert coupon_holds.coupon_holds_release(now=_later(59)) == 0
    assert coupon_holds.coupon_holds_release(now=_later(61)) == 1
    assert coupon_holds.coupon_holds_release(now=_later(61)) == 0  # once
    assert _times_redeemed(coupon) == 0
    assert CouponRedemption.objects.get(order__token=started_a["order"]).released_at
    _, started_b = _start("ben@example.com")  # the use is free again: Ben takes it
    assert started_b["status"] == 200 and _times_redeemed(coupon) == 1

    intents = len(gw.payment_intents())
    response = _pay(client_a, started_a)
    assert response.status_code == 400
    message = response.json()["error"]
    assert "used up" in message and "left open too long" in message
    order_a = Order.objects.get(token=started_a["order"])
    assert not ChargeAttempt.objects.filter(reference=order_a.reference).exists()
    assert len(gw.payment_intents()) == intents  # nothing was sent to the gateway
    assert order_a.status == OrderStatus.PENDING and _times_redeemed(coupon) == 1


def test_a_pay_after_the_release_takes_the_use_again_when_one_is_left(tenant, stripe_api_base):
    catalog(bump=False)
    coupon = CouponFactory(code="ONE", max_redemptions=1)
    client, started = _start("ann@example.com")
    assert coupon_holds.coupon_holds_release(now=_later(120)) == 1
    assert _times_redeemed(coupon) == 0
    response = _pay(client, started)
    assert response.json()["status"] == "paid", response.content
    redemption = CouponRedemption.objects.get(order__token=started["order"])
    assert redemption.released_at is None and _times_redeemed(coupon) == 1
    # Paid: the release never touches it again, however late.
    assert coupon_holds.coupon_holds_release(now=_later(600)) == 0
    assert _times_redeemed(coupon) == 1


def _blocked_on_a_lock(pid_box: list) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", pid_box)
        row = cursor.fetchone()
    return bool(row) and row[0] == "Lock"


def _wait_blocked(pid_box: list) -> None:
    for _ in range(200):
        if pid_box and _blocked_on_a_lock(pid_box):
            return
        time.sleep(0.05)
    raise AssertionError("the second party never waited for the order's lock")


def _in_thread(tenant, fn, out: dict, pid_box: list) -> threading.Thread:
    def run():
        connection.set_tenant(tenant)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid_box.append(cursor.fetchone()[0])
        try:
            out["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_pay_holding_the_order_commits_its_charge_and_the_release_then_gives_nothing_back(
    live_tenant, stripe_api_base, monkeypatch
):
    """Deterministic interleaving: the Pay has locked the order and created its attempt;
    the release waits for the lock (seen in pg_stat_activity), then finds the attempt."""
    catalog(bump=False)
    coupon = CouponFactory(code="ONE", max_redemptions=1)
    client, started = _start("ann@example.com")
    order = Order.objects.get(token=started["order"])
    assert gw.confirm_card_setup(order.setup_ref) == "succeeded"
    created, go_on = threading.Event(), threading.Event()
    real_create = payments_services.attempt_get_or_create

    def create_then_wait(**kwargs):
        made = real_create(**kwargs)
        created.set()
        assert go_on.wait(30)
        return made

    monkeypatch.setattr(payments_services, "attempt_get_or_create", create_then_wait)
    paying, release = {}, {}
    pay_pid, release_pid = [], []
    pay_thread = _in_thread(
        live_tenant,
        lambda: client.post(started["pay_url"], {"setup_intent": order.setup_ref}).json(),
        paying,
        pay_pid,
    )
    assert created.wait(30)
    release_thread = _in_thread(
        live_tenant,
        lambda: coupon_holds.coupon_holds_release(now=_later(120)),
        release,
        release_pid,
    )
    _wait_blocked(release_pid)  # the release waits for the order the Pay holds
    go_on.set()
    pay_thread.join(60)
    release_thread.join(60)
    assert "error" not in paying and "error" not in release, (paying, release)
    assert paying["result"]["status"] == "paid" and release["result"] == 0
    assert CouponRedemption.objects.get(order=order).released_at is None
    assert _times_redeemed(coupon) == 1


def test_a_release_holding_the_order_goes_first_and_the_pay_then_takes_the_use_again(
    live_tenant, stripe_api_base, monkeypatch
):
    catalog(bump=False)
    coupon = CouponFactory(code="ONE", max_redemptions=1)
    client, started = _start("ann@example.com")
    order = Order.objects.get(token=started["order"])
    assert gw.confirm_card_setup(order.setup_ref) == "succeeded"
    released, go_on = threading.Event(), threading.Event()
    real_release = coupon_holds.coupon_release

    def release_then_wait(**kwargs):
        done = real_release(**kwargs)
        released.set()
        assert go_on.wait(30)
        return done

    monkeypatch.setattr(coupon_holds, "coupon_release", release_then_wait)
    paying, release = {}, {}
    pay_pid, release_pid = [], []
    release_thread = _in_thread(
        live_tenant,
        lambda: coupon_holds.coupon_holds_release(now=_later(120)),
        release,
        release_pid,
    )
    assert released.wait(30)
    pay_thread = _in_thread(
        live_tenant,
        lambda: client.post(started["pay_url"], {"setup_intent": order.setup_ref}).json(),
        paying,
        pay_pid,
    )
    _wait_blocked(pay_pid)  # the Pay waits for the order the release holds
    go_on.set()
    release_thread.join(60)
    pay_thread.join(60)
    assert "error" not in paying and "error" not in release, (paying, release)
    assert release["result"] == 1 and paying["result"]["status"] == "paid"
    assert CouponRedemption.objects.get(order=order).released_at is None
    assert _times_redeemed(coupon) == 1
