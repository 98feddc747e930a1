"""The buyer's emails about a subscription: each Notice row is claimed before it is sent, so a
task run twice sends it once; a failed send hands the claim back for the task's retry."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMessage
from django.db import connection
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from core.boundary import db_id
from core.mailerrors import each_email_sent
from subscriptions.models import Notice, PeriodStatus, SubscriptionPeriod

_MANAGE_SALT = "subscriptions.manage"
# A link in an email stays usable this long; every email (and receipt) carries a fresh one.
MANAGE_MAX_AGE = 60 * 60 * 24 * 60
CLAIM_STALE = dt.timedelta(minutes=10)
NOTICE_OVERDUE = dt.timedelta(minutes=10)  # unsent this long after it was made: its task was lost
NOTICE_WINDOW = dt.timedelta(days=2)  # older than this, a notice is not worth sending late
LOOP_NOTICES = "subscriptions.notices_send_overdue"
RENEWED_PREFIX = "paid:"  # a renewal receipt's key: "paid:<period number>" (notify.renewed_queue)

SUBJECTS = {
    "payment_failed": "Your payment did not go through: update your card",
    "authenticate": "Please confirm your payment",
    "renewal_receipt": "Receipt for your subscription",
    "canceled_unpaid": "Your subscription has been cancelled",
    "unpaid": "Your subscription is unpaid",
    "cancel_confirmed": "Your subscription will end",
    "resume_confirmed": "Your subscription continues",
    "card_updated": "Your card was updated",
    "card_expiring": "Your card expires soon",
}


def manage_token(*, customer_id: int, schema: str) -> str:
    return signing.dumps({"s": schema, "c": customer_id}, salt=_MANAGE_SALT)


def manage_check(*, token: str, schema: str) -> int | None:
    """The customer id a manage link grants, or None (forged, expired, another store)."""
    try:
        data = signing.loads(token, salt=_MANAGE_SALT, max_age=MANAGE_MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("s") != schema or db_id(data.get("c")) is None:
        return None
    return data["c"]


def base_url() -> str:
    tenant = getattr(connection, "tenant", None)
    domain = None
    if tenant is not None and hasattr(tenant, "domains"):
        row = tenant.domains.filter(is_primary=True).first() or tenant.domains.first()
        domain = row.domain if row else None
    scheme = getattr(settings, "STOREFRONT_EMAIL_SCHEME", "https")
    return f"{scheme}://{domain or settings.PLATFORM_DOMAIN}"


def manage_url(*, customer_id: int) -> str:
    token = manage_token(customer_id=customer_id, schema=connection.schema_name)
    return base_url() + reverse("subscriptions-manage", args=[token])


def notice_send(*, notice_id: int) -> bool:
    now = timezone.now()
    claimed = (
        Notice.objects.filter(pk=notice_id, sent_at__isnull=True)
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - CLAIM_STALE))
        .update(claimed_at=now)
    )
    if not claimed:
        return False
    notice = Notice.objects.select_related("subscription__customer", "subscription__product").get(
        pk=notice_id
    )
    sub = notice.subscription
    token = manage_token(customer_id=sub.customer_id, schema=connection.schema_name)
    manage = base_url() + reverse("subscriptions-manage", args=[token])
    period = (
        SubscriptionPeriod.objects.filter(subscription=sub)
        .exclude(status=PeriodStatus.PAID)
        .order_by("-number")
        .first()
    )
    context = {
        "sub": sub,
        "kind": notice.kind,
        "product": sub.product,
        "period": period,
        "manage_url": manage,
        "card_url": base_url() + reverse("subscriptions-card", args=[token, sub.pk]),
        "confirm_url": base_url() + reverse("subscriptions-confirm", args=[token, sub.pk]),
    }
    try:
        body = render_to_string("subscriptions/email/notice.txt", context)
        message = EmailMessage(
            subject=SUBJECTS.get(notice.kind, "About your subscription"),
            body=body,
            to=[sub.customer.email],
            headers={"Message-ID": f"<sub-notice-{connection.schema_name}-{notice.pk}@storefront>"},
        )
        message.send()
    except Exception:
        Notice.objects.filter(pk=notice_id).update(claimed_at=None)
        raise
    Notice.objects.filter(pk=notice_id).update(sent_at=timezone.now())
    return True


def notices_send_overdue(*, limit: int = 100) -> int:
    """Periodic sweep (run with the store's renewals): notices still unsent NOTICE_OVERDUE
    after they were made, up to NOTICE_WINDOW back (the task lost with a broker's data, or its
    retries spent while the mail server was down; one claimed by a worker that died is taken
    over after CLAIM_STALE). Sent now, once (`notice_send`'s claim), oldest first, at most
    `limit` per run; the mail server down ends the run quietly (the renewals are not held
    up). The clock is the real one, whatever time the renewals run for."""
    now = timezone.now()
    due = (
        Notice.objects.filter(
            sent_at__isnull=True, created_at__range=(now - NOTICE_WINDOW, now - NOTICE_OVERDUE)
        )
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - CLAIM_STALE))
        .order_by("created_at", "pk")
    )
    return each_email_sent(
        LOOP_NOTICES, due, _late_send, arg="notice_id", limit=limit, what="subscription notice"
    )


def _late_send(notice_id: int) -> bool:
    """What the lost task would have done. A renewal's receipt rode in one message with its
    `subscription.renewed` webhook (subscriptions.renewed): that is handed over again too,
    deduped by its key (a listener that had it makes no second delivery)."""
    notice = Notice.objects.select_related("subscription").get(pk=notice_id)
    if notice.kind == "renewal_receipt" and notice.key.startswith(RENEWED_PREFIX):
        from analytics.services import notice_deliver
        from subscriptions.public import webhook_notice

        number = notice.key.removeprefix(RENEWED_PREFIX)
        hook = webhook_notice(
            sub=notice.subscription, event_type="subscription.renewed", key=number
        )
        notice_deliver(name=hook["name"], payload=hook["payload"], key=hook["key"])
    return notice_send(notice_id=notice_id)
