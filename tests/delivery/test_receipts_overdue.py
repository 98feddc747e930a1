"""Receipts whose task was lost (storefront.services.receipts.receipts_send_overdue, on beat): a
paid order whose receipt is still unsent 10 minutes after payment gets it then, once; never
sooner, never for an order from before the window, never for an unpaid one."""

import datetime as dt

from django.core import mail
from django.utils import timezone

from core.models import LoopFailure
from storefront.models import Order, OrderStatus
from storefront.services import receipts
from tests.delivery_support import paid_order
from tests.factories import ProductFactory
from tests.followups.smtp import mail_server_unreachable, refusing_mail_server
from tests.loops_support import failing_for


def _paid_ago(order: Order, ago: dt.timedelta) -> None:
    Order.objects.filter(pk=order.pk).update(paid_at=timezone.now() - ago)


def test_a_receipt_whose_task_was_lost_is_sent_once_after_ten_minutes(tenant):
    order = paid_order(products=[ProductFactory(name="Photo course")], email="ann@example.com")
    _paid_ago(order, receipts.RECEIPT_OVERDUE - dt.timedelta(minutes=1))
    mail.outbox = []
    assert receipts.receipts_send_overdue() == 0  # its task may still be on its way
    assert mail.outbox == []

    _paid_ago(order, receipts.RECEIPT_OVERDUE + dt.timedelta(minutes=1))
    assert receipts.receipts_send_overdue() == 1
    [message] = mail.outbox
    assert message.to == ["ann@example.com"] and f"/o/{order.token}/" in message.body
    assert receipts.receipts_send_overdue() == 0
    assert receipts.receipt_send(order_id=order.pk) is False  # the task, late: nothing
    assert len(mail.outbox) == 1


def test_old_unpaid_and_already_sent_orders_get_nothing(tenant):
    product = ProductFactory()
    old, unpaid, sent = (paid_order(products=[product], email=f"{n}@example.com") for n in "abc")
    _paid_ago(old, receipts.RECEIPT_WINDOW + dt.timedelta(hours=1))
    Order.objects.filter(pk=unpaid.pk).update(status=OrderStatus.PENDING)
    Order.objects.filter(pk=sent.pk).update(receipt_sent_at=timezone.now())
    for order in (unpaid, sent):
        _paid_ago(order, dt.timedelta(hours=1))
    mail.outbox = []

    assert receipts.receipts_send_overdue() == 0
    assert mail.outbox == []


def test_one_receipt_that_fails_does_not_stop_the_others_and_is_sent_on_a_later_run(
    tenant, monkeypatch
):
    product = ProductFactory()
    broken, fine = (paid_order(products=[product], email=f"{n}@example.com") for n in "bf")
    for order in (broken, fine):
        _paid_ago(order, dt.timedelta(hours=1))
    mail.outbox = []
    real = receipts.receipt_send
    monkeypatch.setattr(
        receipts, "receipt_send", failing_for(real, keyword="order_id", bad=broken.pk)
    )

    assert receipts.receipts_send_overdue() == 1
    assert [m.to for m in mail.outbox] == [["f@example.com"]]
    assert LoopFailure.objects.get(loop=receipts.LOOP_RECEIPTS).record_id == str(broken.pk)

    monkeypatch.setattr(receipts, "receipt_send", real)
    assert receipts.receipts_send_overdue() == 1
    assert [m.to for m in mail.outbox] == [["f@example.com"], ["b@example.com"]]
    assert not LoopFailure.objects.filter(loop=receipts.LOOP_RECEIPTS).exists()


def test_a_sweep_sends_at_most_its_limit_oldest_first(tenant):
    product = ProductFactory()
    orders = [paid_order(products=[product], email=f"{n}@example.com") for n in "xyz"]
    for n, order in enumerate(orders):
        _paid_ago(order, dt.timedelta(hours=3 - n))
    mail.outbox = []

    assert receipts.receipts_send_overdue(limit=2) == 2
    assert [m.to for m in mail.outbox] == [["x@example.com"], ["y@example.com"]]
    assert receipts.receipts_send_overdue(limit=2) == 1


def test_an_unreachable_mail_server_ends_the_sweep_quietly_and_counts_against_no_receipt(
    tenant, settings
):
    product = ProductFactory()
    orders = [paid_order(products=[product], email=f"{n}@example.com") for n in "ab"]
    for order in orders:
        _paid_ago(order, dt.timedelta(hours=1))
    mail_server_unreachable(settings)

    assert receipts.receipts_send_overdue() == 0  # no exception: the beat task ends cleanly
    assert not LoopFailure.objects.filter(loop=receipts.LOOP_RECEIPTS).exists()
    assert not Order.objects.filter(receipt_sent_at__isnull=False).exists()  # handed back

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    assert receipts.receipts_send_overdue() == 2


def test_a_mailbox_the_server_refuses_for_good_is_counted_and_the_others_are_sent(
    tenant, settings, smtp_mail
):
    with refusing_mail_server(settings) as collector:
        product = ProductFactory()
        gone = paid_order(products=[product], email="gone@example.com")
        here = paid_order(products=[product], email="here@example.com")
        _paid_ago(gone, dt.timedelta(hours=2))  # the oldest: first in line
        _paid_ago(here, dt.timedelta(hours=1))

        assert receipts.receipts_send_overdue() == 1
        assert len(collector.to("here@example.com")) == 1
        row = LoopFailure.objects.get(loop=receipts.LOOP_RECEIPTS)
        assert row.record_id == str(gone.pk) and "550" in row.last_error
