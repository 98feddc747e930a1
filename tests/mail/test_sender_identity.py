"""The store's own voice in email, at a real local SMTP server: its name as the From name, its
support address as Reply-To, its own verified sending domain (SPF and DKIM records shown,
checked through the injectable resolver, messages DKIM-signed), the platform's address
otherwise; bounces and complaints (provider webhook or bounce mailbox) stop further sends."""

from __future__ import annotations

import datetime as dt
import json
import time
from email.utils import parseaddr

import dkim
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context

from storefront.models import FollowUpSend, StoreSettings
from storefront.services import followups
from storefront.services.receipts import receipt_send
from tenants import dns, mailevents, sending
from tenants.models import Creator, MailSuppression, SendingDomain
from tests.followups.helpers import T0, catalog, paid_order

H = dt.timedelta(hours=1)
HOST = "t1.localhost"
SECRET = "mail-events-test-secret"


@pytest.fixture
def store(tenant, settings):
    settings.DEFAULT_FROM_EMAIL = "store@platform.test"
    settings.MAIL_SPF_INCLUDE = "_spf.platform.test"
    row = StoreSettings.current()
    row.support_email = "help@creator.example"
    row.save()
    return tenant


def _resolver_for(row: SendingDomain, *, spf: str | None = None, dkim_ok: bool = True):
    records = {row.domain: [spf or "v=spf1 include:_spf.platform.test ~all"]}
    if dkim_ok:
        records[sending.dkim_record_name(row)] = [sending.dkim_value(row)]
    return dns.StaticResolver(txt=records)


def _add_domain(tenant, domain="mail.creator.example") -> SendingDomain:
    with schema_context("public"):
        return sending.sending_domain_add(
            creator=Creator.objects.get(pk=tenant.pk), domain=domain, local_part="hello"
        )


def test_a_receipt_comes_from_the_stores_name_at_the_platform_address_with_its_reply_to(
    store, smtp_mail
):
    core, _, _ = catalog()
    order = paid_order("buyer@example.com", core, schedule=False)
    assert receipt_send(order_id=order.pk)
    (mail,) = smtp_mail.to("buyer@example.com")
    name, address = parseaddr(mail["From"])
    assert name == Creator.objects.get(pk=store.pk).display_name and name
    assert address == "store@platform.test"
    assert mail["Reply-To"] == "help@creator.example"
    assert "DKIM-Signature" not in mail  # the provider signs the platform's own domain


def test_the_sender_name_setting_wins_over_the_stores_name(store, smtp_mail):
    StoreSettings.current()  # the row exists: a committing test may have emptied the table
    StoreSettings.objects.filter(pk=1).update(sender_name="Ana from Lightroom Lab")
    core, _, _ = catalog()
    paid_order("buyer@example.com", core)
    assert followups.followups_send_due(now=T0 + 24 * H) == 1
    (mail,) = smtp_mail.to("buyer@example.com")
    assert parseaddr(mail["From"]) == ("Ana from Lightroom Lab", "store@platform.test")
    assert mail["Reply-To"] == "help@creator.example"


def test_the_dns_records_are_shown_and_the_domain_is_used_only_once_both_are_published(
    store, smtp_mail
):
    row = _add_domain(store)
    records = sending.sending_domain_records(row)
    assert [(r.type, r.name) for r in records] == [
        ("TXT", "mail.creator.example"),
        ("TXT", f"{row.dkim_selector}._domainkey.mail.creator.example"),
    ]
    assert records[0].value == "v=spf1 include:_spf.platform.test ~all"
    assert records[1].value.startswith("v=DKIM1; k=rsa; p=MII")
    with schema_context("public"):
        assert not sending.sending_domain_verify(row=row, resolver=dns.StaticResolver())
        row.refresh_from_db()
        assert "no SPF record" in row.last_error and "DKIM" in row.last_error
        assert not sending.sending_domain_verify(
            row=row, resolver=_resolver_for(row, spf="v=spf1 include:other.example ~all")
        )
        row.refresh_from_db()
        assert "does not contain include:_spf.platform.test" in row.last_error
        assert not sending.sending_domain_verify(
            row=row, resolver=_resolver_for(row, dkim_ok=False)
        )
        # DNS down: "could not ask", not "wrong".
        assert not sending.sending_domain_verify(row=row, resolver=dns.StaticResolver(failing=True))
        row.refresh_from_db()
        assert "could not be asked" in row.last_error

    core, _, _ = catalog()
    order = paid_order("buyer@example.com", core, schedule=False)
    assert receipt_send(order_id=order.pk)
    assert parseaddr(smtp_mail.messages[-1]["From"])[1] == "store@platform.test"

    with schema_context("public"):
        assert sending.sending_domain_verify(row=row, resolver=_resolver_for(row))
    other = paid_order("second@example.com", core, schedule=False)
    assert receipt_send(order_id=other.pk)
    (mail,) = smtp_mail.to("second@example.com")
    assert parseaddr(mail["From"])[1] == "hello@mail.creator.example"
    assert mail["Reply-To"] == "help@creator.example"


def test_mail_from_the_stores_domain_carries_a_dkim_signature_that_verifies(store, smtp_mail):
    row = _add_domain(store)
    with schema_context("public"):
        assert sending.sending_domain_verify(row=row, resolver=_resolver_for(row))
    core, _, _ = catalog()
    paid_order("buyer@example.com", core)
    assert followups.followups_send_due(now=T0 + 24 * H) == 1
    (mail,) = smtp_mail.to("buyer@example.com")
    assert f"s={row.dkim_selector}" in str(mail["DKIM-Signature"]).replace(" ", "")
    published = {f"{sending.dkim_record_name(row)}.": sending.dkim_value(row).encode()}

    def dnsfunc(name, timeout=5):
        return published.get(name.decode() if isinstance(name, bytes) else name)

    raw = mail.as_bytes()
    assert dkim.verify(raw, dnsfunc=dnsfunc)
    tampered = raw.replace(b"Subject: ", b"Subject: FREE ", 1)
    assert not dkim.verify(tampered, dnsfunc=dnsfunc)


def test_a_removed_record_sends_mail_from_the_platform_again_after_the_periodic_check(
    store, smtp_mail
):
    row = _add_domain(store)
    with schema_context("public"):
        assert sending.sending_domain_verify(row=row, resolver=_resolver_for(row))
        assert sending.sending_domains_verify_all(resolver=dns.StaticResolver()) == 0
        row.refresh_from_db()
        assert row.verified_at is None
        assert sending.sender_for(creator_id=store.pk).address == "store@platform.test"


@pytest.mark.parametrize(
    ("domain", "local_part", "problem"),
    [
        ("", "store", "enter a domain"),
        ("not a domain", "store", "not a valid domain"),
        ("mail.localhost", "store", "platform"),
        ("mail.creator.example", "bad local part", "sender name before @"),
        ("mail\x00.example", "store", "at most 253"),
    ],
)
def test_a_bad_sending_domain_is_refused_with_a_reason_and_nothing_is_written(
    store, domain, local_part, problem, settings
):
    settings.PLATFORM_DOMAIN = "localhost"
    with schema_context("public"), pytest.raises(sending.SendingDomainError, match=problem):
        sending.sending_domain_add(
            creator=Creator.objects.get(pk=store.pk), domain=domain, local_part=local_part
        )
    assert not SendingDomain.objects.exists()


def test_the_admin_page_shows_the_records_and_checks_them(store, client_for, monkeypatch):
    from tenants import views_sending

    user = get_user_model().objects.create_superuser("sender-owner", "o@example.com", "pw")
    client = client_for(HOST)
    client.force_login(user)
    page = client.get("/admin/email-sender/")
    assert page.status_code == 200 and b"store@platform.test" in page.content
    bad = client.post("/admin/email-sender/", {"domain": "nope", "local_part": "store"})
    assert bad.status_code == 400 and b"sending-error" in bad.content
    added = client.post(
        "/admin/email-sender/", {"domain": "mail.creator.example", "local_part": "hello"}
    )
    assert added.status_code == 302
    with schema_context("public"):
        row = SendingDomain.objects.get()
    page = client.get("/admin/email-sender/").content.decode()
    assert sending.dkim_record_name(row) in page and row.dkim_public_key in page
    assert "v=spf1 include:_spf.platform.test ~all" in page
    monkeypatch.setattr(views_sending, "default_resolver", lambda: _resolver_for(row))
    assert client.post(f"/admin/email-sender/{row.pk}/check/").status_code == 302
    page = client.get("/admin/email-sender/").content.decode()
    assert "hello@mail.creator.example" in page and 'data-state="verified"' in page
    assert client.post("/admin/email-sender/999/check/").status_code == 404


def test_another_stores_sending_domain_cannot_be_checked_or_removed_from_this_store(
    store, other_tenant, client_for
):
    with schema_context("public"):
        theirs = sending.sending_domain_add(
            creator=Creator.objects.get(pk=other_tenant.pk), domain="mail.other.example"
        )
    user = get_user_model().objects.create_superuser("sender-owner2", "o@example.com", "pw")
    client = client_for(HOST)
    client.force_login(user)
    assert client.post(f"/admin/email-sender/{theirs.pk}/check/").status_code == 404
    assert client.post(f"/admin/email-sender/{theirs.pk}/remove/").status_code == 404
    assert b"mail.other.example" not in client.get("/admin/email-sender/").content
    with schema_context("public"):
        assert SendingDomain.objects.filter(pk=theirs.pk).exists()


# --- bounces and complaints ----------------------------------------------------------------


def _signed_post(body: dict, *, secret=SECRET, at=None):
    raw = json.dumps(body).encode()
    header = mailevents.webhook_signature(secret=secret, timestamp=int(at or time.time()), body=raw)
    return Client(HTTP_HOST="localhost").post(
        "/webhooks/mail/", data=raw, content_type="application/json", HTTP_X_MAIL_SIGNATURE=header
    )


def test_a_bounce_reported_by_the_provider_stops_the_next_follow_up(store, smtp_mail, settings):
    settings.MAIL_EVENTS_SECRET = SECRET
    core, _, _ = catalog()
    order = paid_order("bouncy@example.com", core)
    assert followups.followups_send_due(now=T0 + 24 * H) == 1
    assert len(smtp_mail.to("bouncy@example.com")) == 1

    response = _signed_post(
        {"type": "bounce", "recipient": "Bouncy@Example.com", "bounce_type": "permanent"}
    )
    assert response.status_code == 200 and response.json() == {"suppressed": True}
    assert _signed_post({"type": "bounce", "recipient": "bouncy@example.com"}).json() == {
        "suppressed": False  # already suppressed: a replay changes nothing
    }
    connection.set_tenant(store)
    assert followups.followups_send_due(now=T0 + 72 * H) == 0
    assert len(smtp_mail.to("bouncy@example.com")) == 1
    step2 = FollowUpSend.objects.get(order=order, step=2)
    assert (step2.status, step2.skipped_reason) == ("skipped", "address_suppressed")
    # Receipts are not sent to it either.
    other = paid_order("bouncy@example.com", core, schedule=False)
    assert receipt_send(order_id=other.pk) is False
    assert len(smtp_mail.to("bouncy@example.com")) == 1
    with schema_context("public"):
        (row,) = MailSuppression.objects.all()
        assert "bouncy" not in row.address_digest and row.reason == "bounce"


def test_a_complaint_suppresses_and_a_transient_bounce_does_not(store, settings):
    settings.MAIL_EVENTS_SECRET = SECRET
    assert _signed_post({"type": "complaint", "recipient": "angry@example.com"}).status_code == 200
    soft = _signed_post(
        {"type": "bounce", "recipient": "full@example.com", "bounce_type": "transient"}
    )
    assert soft.json() == {"suppressed": False}
    with schema_context("public"):
        assert mailevents.is_suppressed("angry@example.com")
        assert not mailevents.is_suppressed("full@example.com")


@pytest.mark.parametrize(
    "case",
    ["wrong secret", "old timestamp", "no header", "not json", "bad shape", "not configured"],
)
def test_a_forged_stale_or_malformed_mail_event_is_refused_and_suppresses_nothing(
    store, settings, case
):
    settings.MAIL_EVENTS_SECRET = "" if case == "not configured" else SECRET
    body = {"type": "bounce", "recipient": "victim@example.com"}
    client = Client(HTTP_HOST="localhost")
    if case == "wrong secret":
        response = _signed_post(body, secret="guess")
    elif case == "old timestamp":
        response = _signed_post(body, at=time.time() - 3600)
    elif case == "no header":
        response = client.post("/webhooks/mail/", data=body, content_type="application/json")
    elif case == "not json":
        raw = b"\xff not json"
        header = mailevents.webhook_signature(secret=SECRET, timestamp=int(time.time()), body=raw)
        response = client.post(
            "/webhooks/mail/", data=raw, content_type="text/plain", HTTP_X_MAIL_SIGNATURE=header
        )
    elif case == "bad shape":
        response = _signed_post({"type": "delivered", "recipient": ["x"]})
    else:
        response = _signed_post(body)
    assert response.status_code == 400
    assert "error" in response.json()
    with schema_context("public"):
        assert not MailSuppression.objects.exists()


DSN = b"""From: MAILER-DAEMON@mx.example
To: bounces@platform.test
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain

Your message could not be delivered.

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example

Final-Recipient: rfc822; gone@example.com
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 gone@example.com: user unknown

Final-Recipient: rfc822; later@example.com
Action: delayed
Status: 4.2.2

--b1--
"""

ARF = b"""From: fbl@isp.example
To: abuse@platform.test
Subject: complaint
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="b2"

--b2
Content-Type: text/plain

This is an abuse report.

--b2
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: isp-fbl/1.0
Version: 1
Original-Rcpt-To: <spam.hater@example.com>

--b2--
"""


def test_the_bounce_mailbox_is_read_once_and_suppresses_failed_and_complaining_recipients(
    store, tmp_path
):
    for sub in ("new", "cur", "tmp"):
        (tmp_path / sub).mkdir()
    (tmp_path / "new" / "1.dsn").write_bytes(DSN)
    (tmp_path / "new" / "2.arf").write_bytes(ARF)
    (tmp_path / "new" / "3.junk").write_bytes(b"\x00\xff not a message")
    with schema_context("public"):
        assert mailevents.mailbox_collect(maildir=str(tmp_path)) == 2
        assert mailevents.is_suppressed("gone@example.com")
        assert mailevents.is_suppressed("spam.hater@example.com")
        assert not mailevents.is_suppressed("later@example.com")  # only delayed
        assert sorted(MailSuppression.objects.values_list("reason", "source")) == [
            ("bounce", "mailbox"),
            ("complaint", "mailbox"),
        ]
        assert "gone@example.com" not in MailSuppression.objects.get(reason="bounce").detail
        assert list((tmp_path / "new").iterdir()) == []
        assert len(list((tmp_path / "cur").iterdir())) == 3
        assert mailevents.mailbox_collect(maildir=str(tmp_path)) == 0
