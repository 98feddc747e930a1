"""A new creator, start to finish, in headless Chromium: signs up on the platform's domain,
verifies the email from the local SMTP server, connects payouts on the local one-click
onboarding page; follows the checklist's "Add your first product" link and makes the core
product, the products it offers and its bump and one-click upsell in the store admin's add forms
(the test catalog's names and prices, tests/catalog.py; its German VAT rate is still made with
a factory); a buyer buys on the new store's host with the bump and accepts the upsell; the
creator's connected account at the local Stripe server then holds the two settled charges less
the platform fee, and refunding the upsell line in the store admin takes back exactly its share
(payments.transfers.creator_share: pro rata, fee returned).

Transfers and reversals are queued through the outbox as in production; the test runs the
queued tasks (the registered Celery tasks) in place of the worker."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.db import connection
from django_tenants.utils import tenant_context
from playwright.sync_api import expect

from core.models import LoopFailure, OutboxMessage
from core.money_forms import major_text
from tests.browser.conftest import fill_card
from tests.browser.test_signup_browser import _mail_to, smtp  # noqa: F401 (fixture)
from tests.followups.smtp import text_of

pytestmark = [pytest.mark.browser, pytest.mark.gateway, pytest.mark.slow]

SLUG = "e2e-shop"
EMAIL = "e2e-creator@example.com"
BUYER = "e2e-buyer@example.com"

# The test catalog's prices with 19 % German VAT: core 4900+931 and bump 900+171 in one
# charge, the upsell 1200+228 in its own one-click charge.
PRIMARY, UPSELL = 6902, 1428
# The default platform fee, 5 % half up plus 30 minor units per charge.
PRIMARY_FEE, UPSELL_FEE = 345 + 30, 71 + 30


@pytest.fixture
def committed(django_db_setup, django_db_blocker):
    """Real commits (the live server runs in another thread); the new store, its schema and
    what it queued in the public outbox are removed after."""
    from tenants.models import Creator

    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        yield
        connection.set_schema_to_public()
        for creator in Creator.objects.filter(slug=SLUG):
            schema = creator.schema_name
            creator.delete(force_drop=True)  # drops its schema too (auto_drop_schema)
            OutboxMessage.objects.filter(schema_name=schema).delete()
            LoopFailure.objects.filter(schema_name=schema).delete()


def _run_queued(task_name: str) -> int:
    """What the worker does with the store's queued messages of one task (in enqueue order)."""
    from config.celery_app import app

    ran = 0
    for message in OutboxMessage.objects.filter(
        schema_name=connection.schema_name, task_name=task_name
    ).order_by("pk"):
        app.tasks[task_name].apply(kwargs=message.kwargs, throw=True)
        ran += 1
    return ran


def _balance(account_ref: str) -> int:
    from tests.payments.helpers import sdk

    balance = sdk().v1.balance.retrieve(options={"stripe_account": account_ref})
    return sum(item.amount for item in balance.available)


def _sign_up_and_connect(page, platform: str, store: str, mail) -> None:
    page.goto(f"{platform}/")
    page.get_by_role("link", name="Open your store").click()
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill("a-long-Passphrase-42")
    page.get_by_label("Store name").fill("End To End Shop")
    page.get_by_label("Subdomain").fill(SLUG)
    page.wait_for_timeout(1100)  # longer than the minimum fill time
    page.get_by_role("button", name="Open my store").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()

    (message,) = _mail_to(mail, EMAIL)
    page.goto(re.search(r"http://\S+/signup/verify/\S+/", text_of(message)).group(0))
    page.get_by_role("button", name="Confirm and go to my store").click()
    expect(page.get_by_role("heading", name="Get End To End Shop ready")).to_be_visible()
    assert page.url == f"{store}/admin/getting-started/"

    page.get_by_role("button", name="Connect payouts").click()
    page.get_by_role("button", name="Complete onboarding").click()
    expect(page.locator('#getting-started [data-item="connect_payouts"]')).to_have_attribute(
        "data-done", "true"
    )


def _add_product(page, *, name: str, slug: str, price: int, tier: str) -> None:
    """On the product add form: fill it and save and add another (`price` in minor units,
    typed in dollars as a creator types it)."""
    page.get_by_label("Name").fill(name)
    # The slug is prepopulated from the name (when the name field loses focus): replace it.
    page.get_by_label("Slug").focus()
    page.get_by_label("Slug").fill(slug)
    expect(page.get_by_label("Slug")).to_have_value(slug)
    page.locator("#id_tier").select_option(tier)
    expect(page.locator(".money-input").first).to_contain_text("USD")
    page.locator("#id_price_amount").fill(major_text(price, "USD"))
    page.get_by_label("Deliverable url").fill(f"https://files.example/{slug}.zip")
    page.locator("#id_status").select_option("active")
    page.locator("input[name=_addanother]").click()
    expect(page.locator(".messagelist .success")).to_contain_text(name)


def _add_offer(page, store: str, *, kind: str, product: str, price: int, **texts: str) -> None:
    """On the offer add form: the offer on "Photo course" (`price` in minor units, typed in
    dollars)."""
    page.goto(f"{store}/admin/offers/offer/add/")
    page.locator("#id_kind").select_option(kind)
    page.locator("#id_trigger_product").select_option(label="Photo course")
    page.locator("#id_product").select_option(label=product)
    page.locator("#id_price_amount").fill(major_text(price, "USD"))
    for field, value in texts.items():
        page.locator(f"#id_{field}").fill(value)
    page.locator("input[name=_save]").click()
    expect(page.locator(".messagelist .success")).to_contain_text(texts["headline"])
    # Within the 10–30 % sweet spot of the $49 core: no pricing warning.
    expect(page.locator(".messagelist .warning")).to_have_count(0)


def _build_catalog_in_admin(page, store: str) -> None:
    """The creator's first product and its offer ladder, as tests/catalog.py makes them with
    catalog(upsell=True): the $49 course (slug "course"), the $12 preset pack bumped at $9 and
    the $29 editing masterclass upsold at $12."""
    page.get_by_role("link", name="Add your first product").click()
    assert page.url == f"{store}/admin/storefront/product/add/"
    _add_product(page, name="Photo course", slug="course", price=4900, tier="entry")
    _add_product(page, name="Preset pack", slug="preset-pack", price=1200, tier="entry")
    _add_product(
        page, name="Editing masterclass", slug="editing-masterclass", price=2900, tier="entry"
    )
    _add_offer(
        page,
        store,
        kind="bump",
        product="Preset pack",
        price=900,
        headline="Add the preset pack",
        benefit="Apply what you learn in one click.",
    )
    _add_offer(
        page,
        store,
        kind="upsell",
        product="Editing masterclass",
        price=1200,
        headline="Add the editing masterclass",
        benefit="Finish every photo in five minutes.",
        refund_terms="Refundable within 30 days, no questions asked.",
    )
    page.goto(f"{store}/admin/getting-started/")
    for item in ("add_product", "arrange_ladder"):
        expect(page.locator(f'#getting-started [data-item="{item}"]')).to_have_attribute(
            "data-done", "true"
        )


def _buy_with_bump_and_upsell(page, store: str) -> None:
    page.goto(f"{store}/checkout/course/")
    page.get_by_label("Email").fill(BUYER)
    page.get_by_label("Country").select_option("DE")
    expect(page.locator("#tax")).to_contain_text("9.31")
    page.get_by_label("Yes, add Preset pack").check()
    expect(page.locator("#total")).to_contain_text("69.02")
    fill_card(page, "4242424242424242")
    page.get_by_role("button", name="Pay").click()
    page.wait_for_url("**/offer", timeout=15000)
    page.get_by_role("button", name="Yes, add it for $14.28").click()
    page.wait_for_url("**/thanks", timeout=15000)
    expect(page.locator("#order-lines tbody tr")).to_have_count(3)


def _refund_upsell_in_admin(page, store: str, line_pk: int) -> None:
    page.goto(f"{store}/admin/storefront/order/")
    page.locator("input[name=_selected_action]").check()
    page.locator("select[name=action]").select_option("refund_lines")
    page.locator("button[name=index]").click()
    page.locator(f"input[name=amount_{line_pk}]").fill("14.28")
    page.get_by_label("Reason").fill("the buyer asked for the add-on to be refunded")
    page.get_by_role("button", name="Refund these amounts").click()
    expect(page.locator(".messagelist .success")).to_contain_text("refunded $14.28")


def test_a_new_creator_sells_with_bump_and_upsell_and_gets_exactly_the_settled_share(
    browser,
    page,
    committed,
    smtp,  # noqa: F811
    live_server_port,
    stripe_api_base,
):
    from payments import transfers
    from payments.models import (
        ChargeAttempt,
        PayoutAccount,
        ReversalStatus,
        TransferAttempt,
        TransferReversal,
        TransferStatus,
    )
    from storefront.models import Order
    from tenants.models import Creator
    from tests.factories import TaxRateFactory

    assert (settings.PLATFORM_FEE_BPS, settings.PLATFORM_FEE_FIXED) == (500, 30)
    platform = f"http://localhost:{live_server_port}"
    store = f"http://{SLUG}.localhost:{live_server_port}"

    _sign_up_and_connect(page, platform, store, smtp)
    _build_catalog_in_admin(page, store)
    creator = Creator.objects.get(slug=SLUG)
    with tenant_context(creator):
        account_ref = PayoutAccount.objects.get().account_ref
        TaxRateFactory(country="DE", rate="19.000")  # the test catalog's German VAT
    connection.set_schema_to_public()
    assert _balance(account_ref) == 0

    buyer = browser.new_context(viewport={"width": 1000, "height": 900})
    try:
        _buy_with_bump_and_upsell(buyer.new_page(), store)
    finally:
        buyer.close()

    with tenant_context(creator):
        order = Order.objects.get(customer__email=BUYER)
        charges = sorted(ChargeAttempt.objects.filter(status="succeeded"), key=lambda c: c.pk)
        assert [c.amount for c in charges] == [PRIMARY, UPSELL]
        assert not TransferAttempt.objects.exists()  # queued, not yet run by a worker
        assert _run_queued(transfers.TRANSFER_TASK) == 2
        sent = {t.charge_attempt_id: t for t in TransferAttempt.objects.all()}
        assert {t.status for t in sent.values()} == {TransferStatus.SUCCEEDED}
        assert [(sent[c.pk].gross, sent[c.pk].fee) for c in charges] == [
            (PRIMARY, PRIMARY_FEE),
            (UPSELL, UPSELL_FEE),
        ]
        upsell_line = order.lines.get(kind="upsell")
    connection.set_schema_to_public()
    settled = PRIMARY - PRIMARY_FEE + UPSELL - UPSELL_FEE
    assert settled == 7854
    assert _balance(account_ref) == settled

    _refund_upsell_in_admin(page, store, upsell_line.pk)
    with tenant_context(creator):
        assert _run_queued(transfers.REVERSAL_TASK) == 1
        (reversal,) = TransferReversal.objects.all()
        assert reversal.status == ReversalStatus.SUCCEEDED
        # All of the upsell's charge came back: all of its transfer is taken back, and the
        # platform returns its fee on it; the primary charge's transfer is untouched.
        assert (reversal.covered, reversal.amount) == (UPSELL, UPSELL - UPSELL_FEE)
    connection.set_schema_to_public()
    assert _balance(account_ref) == settled - (UPSELL - UPSELL_FEE) == PRIMARY - PRIMARY_FEE
