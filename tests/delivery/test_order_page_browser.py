"""In headless Chromium: the order page with a working download (and none after a refund),
and the magic-link flow from the request form through the mailed link (a real local SMTP
server) to the order page. Each page passes axe-core."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.db import connection

from core.models import OutboxMessage
from storefront import tasks
from storefront.models import Order, OrderStatus
from tests.browser_support import AXE_RUN
from tests.delivery_support import FILE_BYTES, file_remove, paid_order, product_with_file
from tests.followups.smtp import text_of

pytestmark = [pytest.mark.browser]

AXE = Path(__file__).resolve().parent.parent.parent / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture
def course(live_tenant):
    product = product_with_file(slug="course", name="Photo course", license_keys=True)
    yield product
    connection.set_tenant(live_tenant)
    file_remove(product)


def _axe_clean(page) -> None:
    if not AXE.exists():
        pytest.skip("node_modules/axe-core is missing (bin/test runs npm ci)")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(AXE_RUN)
    assert result["violations"] == [], [v["id"] for v in result["violations"]]


def test_the_order_page_downloads_the_file_and_shows_no_link_after_a_refund(
    browser, live_url, course, tmp_path
):
    order = paid_order(products=[course], email="fan@example.com")
    context = browser.new_context(accept_downloads=True, bypass_csp=True)
    page = context.new_page()
    try:
        page.goto(f"{live_url}/o/{order.token}/")
        assert page.locator("h1").inner_text() == "Your order"
        key = page.locator("code.license-key").inner_text()
        assert re.fullmatch(r"([0-9A-Z]{5}-){4}[0-9A-Z]{5}", key)
        _axe_clean(page)
        with page.expect_download() as info:
            page.get_by_role("link", name="Download Photo course").click()
        download = info.value
        assert download.suggested_filename == "course.pdf"
        saved = tmp_path / "course.pdf"
        download.save_as(saved)
        assert saved.read_bytes() == FILE_BYTES
        href = page.get_by_role("link", name="Download Photo course").get_attribute("href")

        Order.objects.filter(pk=order.pk).update(status=OrderStatus.REFUNDED)
        page.goto(f"{live_url}/o/{order.token}/")
        assert page.get_by_role("link", name=re.compile("Download")).count() == 0
        assert "refunded in full" in page.content()
        assert key not in page.content()
        gone = page.goto(live_url + href)
        assert gone.status == 410
        assert "no longer available" in page.content()
    finally:
        context.close()


def test_the_magic_link_flow_from_the_form_to_the_order_page(
    browser, live_url, live_tenant, course, smtp_mail
):
    order = paid_order(products=[course], email="fan@example.com")
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    try:
        page.goto(f"{live_url}/purchases/")
        _axe_clean(page)
        page.get_by_label("Email you bought with").fill("Fan@Example.com")
        page.get_by_role("button", name="Email me a link").click()
        expect_text = "a link to those purchases is on its way"
        assert expect_text in page.locator("#purchases-sent").inner_text()
        _axe_clean(page)

        # The worker's part: the queued task mails the link (through the local SMTP server).
        connection.set_tenant(live_tenant)
        [queued] = OutboxMessage.objects.filter(task_name="storefront.purchases_link_send")
        assert tasks.purchases_link_send(**queued.kwargs) is True
        [message] = smtp_mail.messages
        link = re.search(r"http://\S+/purchases/\S+", text_of(message)).group(0)
        path = "/purchases/" + link.split("/purchases/", 1)[1]

        page.goto(live_url + path)
        assert "fan@example.com" in page.locator("main").inner_text()
        _axe_clean(page)
        page.get_by_role("link", name=f"Order {order.token[:8]}").click()
        page.wait_for_url(f"**/o/{order.token}/")
        assert page.get_by_role("link", name="Download Photo course").count() == 1

        # A tampered link shows nothing of the buyer's.
        bad = page.goto(live_url + path[:-3] + "xyz")
        assert bad.status == 403 and "fan@example.com" not in page.content()
    finally:
        context.close()
