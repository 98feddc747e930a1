"""The store's team (storefront/team.py): the owner invites by email with a role, the signed
link sets a password once; support reaches orders and refunds up to the store's limit and
gets 403 by URL on offers, products, API keys, webhooks, payouts, domains and settings; a
manager cannot demote the owner; invitations and role changes are audited."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.utils import timezone

from audit.models import AuditEntry
from payments.models import Refund, RefundStatus
from storefront import team
from storefront.models import OrderStatus, StaffInvitation, StaffRole, StoreSettings
from tests.admin.conftest import OWNER_ADDRESS, OWNER_AGENT, messages_of
from tests.followups.conftest import smtp, smtp_mail  # noqa: F401 (fixtures)
from tests.payments import helpers as h

HOST = "t1.localhost"
LINK = re.compile(r"http://t1\.localhost/admin/join/([^/\s]+)/")


def _member(username: str, role: str):
    user = get_user_model().objects.create_user(
        username=username, email=username, password="member-pass-123"
    )
    team._role_apply(user, role)
    return user


def _client(user) -> Client:
    client = Client(HTTP_HOST=HOST, REMOTE_ADDR=OWNER_ADDRESS, HTTP_USER_AGENT=OWNER_AGENT)
    client.force_login(user)
    return client


@pytest.fixture
def support(tenant):
    return _member("sam@support.example", StaffRole.SUPPORT)


@pytest.fixture
def manager(tenant):
    return _member("max@manager.example", StaffRole.MANAGER)


def _owner():
    return get_user_model().objects.get(username="owner")


# --- invitations -----------------------------------------------------------------------------


def test_the_owner_invites_support_by_email_and_the_signed_link_sets_a_password_once(
    owner_client,
    smtp_mail,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        sent = owner_client.post("/admin/team/", {"email": "Sam@Help.example", "role": "support"})
    assert sent.status_code == 302, sent.content
    [mail] = smtp_mail.messages
    assert mail["To"] == "sam@help.example"
    body = mail.get_payload(decode=True).decode() if not mail.is_multipart() else str(mail)
    token = LINK.search(body).group(1)
    invitation = StaffInvitation.objects.get()
    assert invitation.role == StaffRole.SUPPORT and invitation.invited_by == _owner()

    visitor = Client(HTTP_HOST=HOST)
    page = visitor.get(f"/admin/join/{token}/")
    assert page.status_code == 200 and b"sam@help.example" in page.content
    mismatch = visitor.post(
        f"/admin/join/{token}/", {"password": "a-long-pass-123", "password2": "other"}
    )
    assert mismatch.status_code == 400
    weak = visitor.post(f"/admin/join/{token}/", {"password": "123", "password2": "123"})
    assert weak.status_code == 400 and not get_user_model().objects.filter(email="sam@help.example")
    joined = visitor.post(
        f"/admin/join/{token}/",
        {"password": "a-long-pass-123", "password2": "a-long-pass-123"},
    )
    assert joined.status_code == 302 and joined["Location"] == "/admin/"
    member = get_user_model().objects.get(username="sam@help.example")
    assert team.user_role(member) == StaffRole.SUPPORT and member.check_password("a-long-pass-123")
    assert visitor.get("/admin/storefront/order/").status_code == 200  # logged in by the join

    again = Client(HTTP_HOST=HOST).post(
        f"/admin/join/{token}/", {"password": "another-pass-456", "password2": "another-pass-456"}
    )
    assert again.status_code == 400 and b"already used" in again.content
    member.refresh_from_db()
    assert member.check_password("a-long-pass-123")

    created = AuditEntry.objects.get(action="team.invitation.create")
    assert (created.actor_label, created.ip_address) == ("owner", OWNER_ADDRESS)
    assert created.changes["role"] == [None, "support"]
    accepted = AuditEntry.objects.get(action="team.invitation.accept")
    assert accepted.actor_label == "sam@help.example"


def test_a_tampered_expired_withdrawn_or_other_store_invitation_link_is_refused(tenant):
    invitation = team.invitation_create(
        actor_user=_owner(),
        request=None,
        email="late@help.example",
        role="manager",
        accept_url=lambda token: token,
    )
    token = team.invitation_token(invitation)
    visitor = Client(HTTP_HOST=HOST)
    tampered = visitor.get(f"/admin/join/{token[:-2]}xx/")
    assert tampered.status_code == 400 and b"not valid" in tampered.content
    StaffInvitation.objects.filter(pk=invitation.pk).update(
        expires_at=timezone.now() - dt.timedelta(minutes=1)
    )
    expired = visitor.post(
        f"/admin/join/{token}/", {"password": "x-long-pass-1", "password2": "x-long-pass-1"}
    )
    assert expired.status_code == 400 and b"expired" in expired.content
    StaffInvitation.objects.filter(pk=invitation.pk).update(
        expires_at=timezone.now() + dt.timedelta(days=1)
    )
    assert team.invitation_revoke(actor_user=_owner(), request=None, invitation=invitation)
    withdrawn = visitor.get(f"/admin/join/{token}/")
    assert withdrawn.status_code == 400 and b"withdrawn" in withdrawn.content
    assert not get_user_model().objects.filter(username="late@help.example").exists()
    # The link names its store: on another store's host it is nothing (last: the request
    # leaves the connection in t2's schema).
    StaffInvitation.objects.filter(pk=invitation.pk).update(revoked_at=None)
    other_store = Client(HTTP_HOST="t2.localhost").get(f"/admin/join/{token}/")
    assert other_store.status_code == 400 and b"not valid" in other_store.content


def test_inviting_refuses_bad_addresses_existing_members_and_roles_the_inviter_cannot_give(
    owner_client, manager
):
    bad = owner_client.post("/admin/team/", {"email": "not-an-address", "role": "support"})
    assert bad.status_code == 400 and b"valid email" in bad.content
    member = owner_client.post("/admin/team/", {"email": manager.email, "role": "support"})
    assert member.status_code == 400 and b"already a member" in member.content
    role = owner_client.post("/admin/team/", {"email": "x@help.example", "role": "root"})
    assert role.status_code == 400
    as_manager = _client(manager).post("/admin/team/", {"email": "x@help.example", "role": "owner"})
    assert as_manager.status_code == 400 and b"Only an owner" in as_manager.content
    assert not StaffInvitation.objects.exists()


# --- roles -----------------------------------------------------------------------------------

SUPPORT_FORBIDDEN = [
    ("get", "/admin/offers/offer/"),
    ("get", "/admin/offers/offer/add/"),
    ("get", "/admin/analytics/experiment/"),
    ("get", "/admin/offers/offerdecision/"),
    ("get", "/admin/storefront/product/"),
    ("get", "/admin/storefront/product/add/"),
    ("get", "/admin/partners/apikey/"),
    ("get", "/admin/partners/apikey/add/"),
    ("get", "/admin/partners/webhooksubscription/"),
    ("get", "/admin/partners/webhooksubscription/add/"),
    ("get", "/admin/partners/webhookdelivery/"),
    ("get", "/admin/payments/payoutaccount/"),
    ("get", "/admin/payments/transferattempt/"),
    ("get", "/admin/payments/payoutentry/"),
    ("post", "/admin/payouts/connect/"),
    ("get", "/admin/payouts/refresh/"),
    ("get", "/admin/payouts/return/"),
    ("get", "/admin/storefront/storesettings/"),
    ("get", "/admin/storefront/storesettings/1/change/"),
    ("post", "/admin/storefront/storesettings/1/change/"),
    ("get", "/admin/storefront/taxrate/"),
    ("get", "/admin/domains/"),
    ("post", "/admin/domains/"),
    ("get", "/admin/getting-started/"),
    ("get", "/admin/team/"),
    ("post", "/admin/team/"),
]


@pytest.mark.parametrize(("method", "url"), SUPPORT_FORBIDDEN)
def test_support_gets_403_by_url_on_offers_keys_webhooks_payouts_and_settings(support, method, url):
    StoreSettings.current()
    client = _client(support)
    response = getattr(client, method)(
        url, {"email": "x@y.example", "role": "owner"} if method == "post" else None
    )
    assert response.status_code == 403, (url, response.status_code)


def test_support_sees_orders_and_customers_and_managers_reach_offers_but_not_owners(
    support, manager
):
    client = _client(support)
    for url in ("/admin/storefront/order/", "/admin/storefront/customer/"):
        assert client.get(url).status_code == 200, url
    boss = _client(manager)
    for url in ("/admin/offers/offer/", "/admin/partners/apikey/", "/admin/team/"):
        assert boss.get(url).status_code == 200, url
    # The auth admin (users, groups, superuser flags) stays the owner's.
    assert boss.get("/admin/auth/user/").status_code in (403, 404)


def test_a_manager_cannot_demote_or_remove_the_owner_and_the_store_keeps_an_owner(
    owner_client, manager, support
):
    owner = _owner()
    boss = _client(manager)
    for role in ("support", ""):
        done = boss.post(f"/admin/team/{owner.pk}/role/", {"role": role}, follow=True)
        assert any("Only an owner" in m for m in messages_of(done)), messages_of(done)
    owner.refresh_from_db()
    assert owner.is_superuser and owner.is_staff
    promote = boss.post(f"/admin/team/{support.pk}/role/", {"role": "owner"}, follow=True)
    assert any("Only an owner" in m for m in messages_of(promote))
    own = owner_client.post(f"/admin/team/{owner.pk}/role/", {"role": "manager"}, follow=True)
    assert any("your own role" in m for m in messages_of(own))
    assert not AuditEntry.objects.filter(action="team.role.change").exists()

    # The owner moves support to manager, then removes them: each change audited.
    owner_client.post(f"/admin/team/{support.pk}/role/", {"role": "manager"})
    support.refresh_from_db()
    assert team.user_role(support) == StaffRole.MANAGER
    owner_client.post(f"/admin/team/{support.pk}/role/", {"role": ""})
    support.refresh_from_db()
    assert team.user_role(support) is None and not support.is_staff
    changes = [
        e.changes["role"]
        for e in AuditEntry.objects.filter(action="team.role.change").order_by("pk")
    ]
    assert changes == [["support", "manager"], ["manager", None]]
    assert _client(support).get("/admin/storefront/order/").status_code == 302  # to login
    # Off the team, not gone: they can be invited again.
    assert (
        owner_client.post("/admin/team/", {"email": support.email, "role": "support"}).status_code
        == 302
    )


def test_two_owners_demoting_each_other_leave_one_owner(tenant):
    """The second demotion runs with the actor as its request loaded it (still an owner):
    the service re-reads the actor under the owners' lock and refuses."""
    first = _owner()
    second = _member("co@owner.example", StaffRole.OWNER)
    second_as_loaded = get_user_model().objects.get(pk=second.pk)
    assert team.member_role_change(actor_user=first, request=None, member=second, role="manager")
    with pytest.raises(team.TeamRefused, match="Only an owner"):
        team.member_role_change(
            actor_user=second_as_loaded, request=None, member=first, role="manager"
        )
    assert list(
        get_user_model().objects.filter(is_superuser=True).values_list("username", flat=True)
    ) == ["owner"]


# --- the support refund limit ----------------------------------------------------------------


def _paid_order(client_for):
    _, bump = h.catalog()
    order = h.checkout_started(client_for(HOST), bump)
    h.pay(order)
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    return order


def _refund(client, order, line, amount: str):
    url = "/admin/storefront/order/"
    form = {"action": "refund_lines", "_selected_action": [order.pk], "index": 0}
    key = client.post(url, form).context["form"]["refund_key"].value()
    done = client.post(
        url,
        {
            **form,
            "apply": "Refund",
            "refund_key": key,
            "reason": "asked",
            f"amount_{line.pk}": amount,
        },
        follow=True,
    )
    assert done.status_code == 200
    return messages_of(done)


@pytest.mark.gateway
def test_a_support_refund_above_the_store_limit_is_refused_with_the_reason(
    support, client_for, stripe_api_base, owner_client
):
    settings_row = StoreSettings.current()
    settings_row.support_refund_limit = 1500  # $15.00 per order
    settings_row.save()
    order = _paid_order(client_for)
    core = order.lines.get(kind="core")
    client = _client(support)

    over = _refund(client, order, core, "20.00")
    assert any(
        "not refunded" in m and "above $15.00 per order need a manager or the owner" in m
        for m in over
    ), over
    assert not Refund.objects.exists()

    assert any("refunded $10.00" in m for m in _refund(client, order, core, "10.00"))
    # Split in parts: the second part would take the order past the limit.
    split = _refund(client, order, core, "6.00")
    assert any("would bring order:" in m and "$16.00" in m for m in split), split
    assert Refund.objects.count() == 1

    # The whole-order refund by support is refused too; the owner's goes through.
    url = "/admin/storefront/order/"
    form = {"action": "refund_in_full", "_selected_action": [order.pk], "index": 0}
    key = client.post(url, form).context["form"]["refund_key"].value()
    full = client.post(url, {**form, "apply": "1", "refund_key": key, "reason": "x"}, follow=True)
    assert any("need a manager or the owner" in m for m in messages_of(full))
    assert any("refunded $20.00" in m for m in _refund(owner_client, order, core, "20.00"))
    assert list(Refund.objects.values_list("amount", "status").order_by("pk")) == [
        (1000, RefundStatus.SUCCEEDED),
        (2000, RefundStatus.SUCCEEDED),
    ]


def test_two_invitations_for_one_address_accepted_at_the_same_moment_make_one_member(
    live_tenant,
):
    """The owner invited the same person twice (the first email seemed lost) and both links
    are opened at once: one member, both invitations used, no 500 from the username's
    uniqueness."""
    from tests.concurrency import in_threads

    owner = _owner()
    tokens = []
    for _ in range(2):
        invitation = team.invitation_create(
            actor_user=owner,
            request=None,
            email="twice@help.example",
            role=StaffRole.SUPPORT,
            accept_url=lambda token: f"http://{HOST}/admin/join/{token}/",
        )
        tokens.append(team.invitation_token(invitation))
    turns = iter(tokens)

    def join():
        token = next(turns)
        client = Client(HTTP_HOST=HOST, raise_request_exception=False)
        response = client.post(
            f"/admin/join/{token}/",
            {"password": "a-long-pass-123", "password2": "a-long-pass-123"},
        )
        return response.status_code

    statuses, errors = in_threads(2, join)
    assert errors == [] and sorted(statuses) == [302, 302], statuses
    connection.set_tenant(live_tenant)
    member = get_user_model().objects.get(username="twice@help.example")
    assert team.user_role(member) == StaffRole.SUPPORT and member.check_password("a-long-pass-123")
    assert StaffInvitation.objects.filter(accepted_at__isnull=False).count() == 2
