"""Staff of t1 never see t2's rows on any admin page: every registered changelist, walked
after both stores have rows, shows exactly t1's rows and none of t2's marked ones."""

from __future__ import annotations

import datetime as dt

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.utils import timezone

from analytics.models import Event, Experiment
from audit.models import AuditEntry
from audit.services import Actor, audit_record
from core.models import LoopFailure
from offers.models import Coupon, CouponRedemption, Offer, OfferDecision
from partners.models import ApiKey, WebhookDelivery, WebhookSubscription
from payments.models import (
    ChargeAttempt,
    Dispute,
    LedgerEntry,
    Mismatch,
    PayoutAccount,
    PayoutEntry,
    Refund,
    TransferAttempt,
    TransferReversal,
    WebhookEvent,
)
from storefront.models import (
    CreditNote,
    Customer,
    FollowUpSend,
    Invoice,
    LineAccess,
    Order,
    OrderLine,
    PrivacyRequest,
    Product,
    StoreSettings,
    TaxRate,
)
from tenants.models import Creator, CustomDomain, Domain


def _rows(mark: str, n: int) -> None:
    """`n` rows of every admin-registered tenant model, each carrying `mark` where it shows."""
    for i in range(n):
        tag = f"{mark}{i}"
        get_user_model().objects.create_user(f"staff-{tag}", f"{tag}@example.com", "x")
        Group.objects.create(name=f"group-{tag}")
        core = Product.objects.create(slug=f"core-{tag}", name=f"Core {tag}", price_amount=4000)
        addon = Product.objects.create(slug=f"addon-{tag}", name=f"Addon {tag}", price_amount=900)
        offer = Offer.objects.create(
            kind="upsell",
            trigger_product=core,
            product=addon,
            price_amount=800,
            headline=f"Offer {tag}",
            benefit="b",
        )
        customer = Customer.objects.create(email=f"buyer-{tag}@example.com")
        order = Order.objects.create(
            token=f"order{tag}", customer=customer, currency="USD", country="US", utm_source=tag
        )
        line = OrderLine.objects.create(
            order=order,
            kind="core",
            product=core,
            description=tag,
            net_amount=4000,
            tax_amount=0,
            total_amount=4000,
            currency="USD",
            tax_rate=0,
            tax_inclusive=False,
            tax_country="US",
        )
        TaxRate.objects.create(country="DE", region=f"R{i}", rate="19.000", name=f"VAT {tag}")
        coupon = Coupon.objects.create(code=f"C{tag}", percent_off="10.00")
        CouponRedemption.objects.create(
            coupon=coupon,
            order=order,
            customer=customer,
            code=f"C{tag}",
            amount=400,
            currency="USD",
        )
        FollowUpSend.objects.create(
            customer=customer,
            order=order,
            offer=offer,
            step=1,
            due_at=timezone.now(),
            nonce=f"nonce{tag}",
            skipped_reason=tag,
        )
        now = timezone.now()
        OfferDecision.objects.create(
            order=order,
            customer=customer,
            offer=offer,
            kind="upsell",
            nonce=f"dec{tag}",
            expires_at=now + dt.timedelta(hours=1),
            net_amount=800,
            tax_amount=0,
            total_amount=800,
            currency="USD",
            tax_rate=0,
            tax_inclusive=False,
            followup_reason=tag,
        )
        Experiment.objects.create(
            offer_id=offer.pk,
            name=f"Experiment {tag}",
            kind="creative",
            variants={"a": {"headline": "x"}, "b": {"headline": "y"}},
        )
        Event.objects.create(name="page_viewed", source=tag, order_id=order.pk)
        attempt = ChargeAttempt.objects.create(
            purpose=f"order:{order.pk}:primary:{tag}",
            idempotency_key=f"idem-{tag}",
            reference=f"order:{tag}",
            amount=4000,
            currency="USD",
            customer_ref="cus",
            payment_method_ref="pm",
        )
        LedgerEntry.objects.create(
            kind="charge",
            gateway_ref=f"pi_{tag}",
            reference=f"order:{tag}",
            line_key="line:1",
            amount=4000,
            currency="USD",
            attempt=attempt,
        )
        LineAccess.objects.create(line=line, license_key=f"KEY-{tag}")
        invoice = Invoice.objects.create(
            number=1000 + i,
            order=order,
            attempt=attempt,
            issued_at=now,
            currency="USD",
            net_amount=4000,
            tax_amount=0,
            total_amount=4000,
            buyer={"email": tag},
        )
        CreditNote.objects.create(
            number=1000 + i,
            invoice=invoice,
            refund_ref=f"re_{tag}",
            issued_at=now,
            currency="USD",
            net_amount=100,
            tax_amount=0,
            total_amount=100,
        )
        Refund.objects.create(
            idempotency_key=f"ref-{tag}",
            reference=f"order:{tag}",
            line_key="line:1",
            payment_ref=f"pi_{tag}",
            amount=100,
            currency="USD",
        )
        Mismatch.objects.create(kind="amount", gateway_ref=f"pi_{tag}", reference=tag, detail=tag)
        Dispute.objects.create(
            gateway_ref=f"dp_{tag}",
            payment_ref=f"pi_{tag}",
            reference=f"order:{tag}",
            attempt=attempt,
            status="needs_response",
            amount=4000,
            currency="USD",
        )
        WebhookEvent.objects.create(
            event_id=f"evt_{tag}",
            event_type="charge.succeeded",
            object_type="charge",
            object_id=f"ch_{tag}",
        )
        ApiKey.objects.create(name=f"Key {tag}", prefix=f"{tag}"[:16], secret_hash="0" * 64)
        subscription = WebhookSubscription.objects.create(
            url=f"https://{tag}.example/hook", secret="s"
        )
        WebhookDelivery.objects.create(
            subscription=subscription,
            event_id=f"ev-{tag}",
            event_name="refund_issued",
            payload={},
            next_attempt_at=timezone.now(),
        )
        audit_record(request_or_actor=Actor.system(f"task-{tag}"), action=f"test.{tag}")
        LoopFailure.objects.create(
            schema_name=connection.schema_name,
            loop="test.loop",
            record_id=tag,
            label=f"record {tag}",
            tries=1,
            last_error=tag,
            first_failed_at=now,
            last_failed_at=now,
        )
        PayoutAccount.objects.create(idempotency_key=f"connect-{tag}", account_ref=f"acct_{tag}")
        transfer = TransferAttempt.objects.create(
            charge_attempt=attempt,
            idempotency_key=f"transfer-{tag}",
            destination=f"acct_{tag}",
            transfer_group=f"order:{tag}",
            gross=1000,
            fee=80,
            amount=920,
            currency="USD",
        )
        TransferReversal.objects.create(
            transfer=transfer,
            cause=f"refund:re_{tag}",
            idempotency_key=f"reversal-{tag}",
            covered=100,
            amount=92,
            fee=8,
            currency="USD",
        )
        PayoutEntry.objects.create(
            kind="transfer",
            gateway_ref=f"tr_{tag}",
            reference=f"order:{tag}",
            attempt=attempt,
            gross=1000,
            fee=80,
            amount=920,
            currency="USD",
        )
        from subscriptions.models import DunningSettings, Plan, Subscription

        DunningSettings.current()
        Plan.objects.create(product=core, kind="subscription", interval_unit="month")
        Subscription.objects.create(
            customer=customer,
            product=core,
            kind="subscription",
            interval_unit="month",
            interval_count=1,
            amount=4000,
            currency="USD",
            anchor=now,
            customer_ref="cus",
            payment_method_ref="pm",
            end_reason=tag,
        )
        PrivacyRequest.objects.create(
            kind="export",
            channel="admin",
            email=f"privacy-{tag}@example.com",
            email_digest=tag,
            requested_by=f"staff-{tag}",
        )
    settings_row = StoreSettings.current()
    settings_row.support_email = f"help-{mark}@example.com"
    settings_row.save()


PLATFORM_ONLY = {Creator, Domain, CustomDomain}


def test_store_staff_never_see_another_stores_rows_on_any_admin_page(
    owner_client, tenant, other_tenant
):
    connection.set_tenant(other_tenant)
    _rows("tzwo", 2)
    connection.set_tenant(tenant)
    _rows("tone", 1)

    walked = []
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        url = f"/admin/{opts.app_label}/{opts.model_name}/"
        page = owner_client.get(url)
        if model in PLATFORM_ONLY:
            assert page.status_code == 403, url  # creators and (custom) domains: platform only
            continue
        assert page.status_code == 200, url
        mine = set(model_admin.get_queryset(page.wsgi_request).values_list("pk", flat=True))
        shown = {obj.pk for obj in page.context["cl"].result_list}
        assert mine, f"{url}: the test made no t1 rows, so it would prove nothing"
        assert shown == mine, url
        html = page.content.decode()
        assert "tzwo" not in html, url
        if model_admin.search_fields:
            search = owner_client.get(url, {"q": "tzwo"})
            assert search.context["cl"].result_count == 0, url
        walked.append(opts.label)

    # Everything a creator's admin lists was walked (a new admin is covered automatically,
    # and must get t1/t2 rows above or the `mine` check fails).
    assert len(walked) == len(admin.site._registry) - len(PLATFORM_ONLY)
    connection.set_tenant(other_tenant)
    assert Product.objects.filter(slug__startswith="core-tzwo").count() == 2
    assert AuditEntry.objects.filter(action__startswith="test.tzwo").count() == 2
    connection.set_tenant(tenant)
