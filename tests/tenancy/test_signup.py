"""Self-serve sign-up on the platform's domain: validation, bot resistance, privacy, verification,
the one-time login hand-off and the unverified store that cannot sell (tenants.signup)."""

from __future__ import annotations

import html
import re
import time

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import connection
from django.test import Client, override_settings
from django_tenants.utils import tenant_context

from tenants import signup
from tenants.models import Creator, Domain, LoginHandoff

PLATFORM = "localhost"
GOOD = {
    "email": "Maker@Example.com",
    "password": "a-long-Passphrase-42",
    "store_name": "Maker Goods",
    "subdomain": "maker-goods",
}


def _platform() -> Client:
    return Client(HTTP_HOST=PLATFORM)


def _stamp() -> str:
    return signup.signup_stamp(now=time.time() - 10)  # drawn ten seconds ago


def _post(client: Client, **overrides):
    data = {**GOOD, "website": "", "stamp": _stamp(), **overrides}
    return client.post("/signup/", data)


def _schema_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [name])
        return cursor.fetchone() is not None


def _state():
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_namespace")
        schemas = cursor.fetchone()[0]
    return Creator.objects.count(), Domain.objects.count(), schemas


def _link(message) -> str:
    return re.search(r"http://\S+/signup/verify/\S+/", message.body).group(0)


def test_signing_up_opens_an_unverified_store_on_its_subdomain_and_mails_a_link(db):
    response = _post(_platform())
    assert response.status_code == 200
    assert b"Check your email" in response.content
    creator = Creator.objects.get(slug="maker-goods")
    assert creator.owner_email == "maker@example.com"
    assert creator.email_verified_at is None and creator.payouts_required
    assert Domain.objects.filter(tenant=creator, domain="maker-goods.localhost").exists()
    with tenant_context(creator):
        owner = get_user_model().objects.get(username="owner")
        assert owner.check_password(GOOD["password"]) and owner.is_staff
    (message,) = mail.outbox
    assert message.to == ["maker@example.com"]
    assert "/signup/verify/" in _link(message)


def test_a_second_sign_up_with_the_same_email_looks_the_same_and_warns_the_owner(db):
    first = _post(_platform())
    before = _state()
    mail.outbox.clear()
    second = _post(
        _platform(), email="maker@EXAMPLE.com", subdomain="another-shop", store_name="Another"
    )
    assert second.status_code == first.status_code == 200
    assert second.content.replace(b"maker@example.com", b"X") == first.content.replace(
        b"maker@example.com", b"X"
    )
    assert _state() == before
    assert not Creator.objects.filter(slug="another-shop").exists()
    (message,) = mail.outbox
    assert message.to == ["maker@example.com"]
    assert "Someone tried to sign up with your email" in message.subject
    assert "/signup/verify/" not in message.body


@pytest.mark.parametrize(
    "overrides, field, reason",
    [
        ({"subdomain": "www"}, "subdomain", "reserved"),
        ({"subdomain": "mail"}, "subdomain", "reserved"),
        ({"subdomain": "signup"}, "subdomain", "reserved"),  # the platform's own path
        ({"subdomain": "webhooks"}, "subdomain", "reserved"),
        ({"subdomain": "pg-shop"}, "subdomain", "reserved"),
        ({"subdomain": "Shop"}, "subdomain", "lower-case"),
        ({"subdomain": "-shop"}, "subdomain", "hyphen"),
        ({"subdomain": "shop-"}, "subdomain", "hyphen"),
        ({"subdomain": "ab"}, "subdomain", "3-63"),
        ({"subdomain": "a" * 64}, "subdomain", "63"),
        ({"subdomain": "sh op"}, "subdomain", "lower-case"),
        ({"subdomain": "shöp"}, "subdomain", "lower-case"),
        ({"subdomain": "sh\nop"}, "subdomain", "lower-case"),
        ({"email": "not-an-email"}, "email", "valid email"),
        ({"password": "password"}, "password", "too common"),
        ({"password": "Ab1!"}, "password", "too short"),
        ({"password": "8172635491827364"}, "password", "entirely numeric"),
        ({"store_name": "   "}, "store_name", ""),
    ],
)
def test_bad_sign_up_input_says_why_on_the_page_and_makes_nothing(db, overrides, field, reason):
    before = _state()
    response = _post(_platform(), **overrides)
    assert response.status_code == 400
    text = response.content.decode()
    assert f'id="err-{field}"' in text
    assert reason.replace("'", "&#x27;") in text
    assert _state() == before
    assert not _schema_exists("maker_goods")
    with tenant_context(Creator.objects.get(slug="t1")):
        pass  # the session tenants are untouched
    assert mail.outbox == []


@pytest.mark.parametrize("field", ["email", "password", "store_name", "subdomain"])
def test_a_nul_in_any_sign_up_field_is_refused_by_the_input_boundary_with_nothing_made(db, field):
    # The input boundary (core/boundary.py) refuses it before the form runs: a readable 400
    # naming the field, no store, no user, no mail.
    before = _state()
    response = _post(_platform(), **{field: "sho\x00p"})
    assert response.status_code == 400
    assert field in response.content.decode()
    assert _state() == before
    assert not _schema_exists("maker_goods")
    assert mail.outbox == []


def test_a_taken_subdomain_is_refused_with_nothing_made(db):
    _post(_platform())
    before = _state()
    mail.outbox.clear()
    response = _post(_platform(), email="someone-else@example.com")
    assert response.status_code == 400
    assert b"is taken" in response.content
    assert _state() == before
    assert mail.outbox == []


def test_the_honeypot_answers_like_success_and_makes_nothing(db):
    before = _state()
    response = _post(_platform(), website="http://spam.example")
    assert response.status_code == 200 and b"Check your email" in response.content
    assert _state() == before
    assert mail.outbox == []


@pytest.mark.parametrize("stamp", ["", "forged", "fresh"])
def test_a_form_sent_back_too_fast_or_with_a_forged_stamp_is_refused(db, stamp):
    value = signup.signup_stamp() if stamp == "fresh" else stamp
    before = _state()
    response = _post(_platform(), stamp=value)
    assert response.status_code == 400
    assert b"That was quick" in response.content or b"The form expired" in response.content
    assert _state() == before and mail.outbox == []


def test_sign_up_posts_are_rate_limited_per_address(db):
    client = _platform()
    statuses = [
        _post(client, email=f"bot{i}@example.com", subdomain="ab").status_code for i in range(11)
    ]
    assert statuses[:10] == [400] * 10
    assert statuses[10] == 429


def test_sign_up_posts_are_rate_limited_per_email_across_addresses(db):
    statuses = [
        _post(Client(HTTP_HOST=PLATFORM, REMOTE_ADDR=f"10.0.0.{i}"), subdomain="ab").status_code
        for i in range(4)
    ]
    assert statuses == [400, 400, 400, 429]


def test_a_subdomain_may_start_with_a_digit(db):
    response = _post(_platform(), subdomain="9lives", email="cat@example.com")
    assert response.status_code == 200
    creator = Creator.objects.get(slug="9lives")
    with tenant_context(creator):
        assert get_user_model().objects.filter(username="owner").exists()


def test_verifying_hands_the_owner_over_to_their_store_admin_once(db):
    _post(_platform())
    link = _link(mail.outbox[0])
    path = link.split(PLATFORM, 1)[1]
    client = _platform()
    page = client.get(path)
    assert page.status_code == 200 and b"Confirm and go to my store" in page.content
    assert Creator.objects.get(slug="maker-goods").email_verified_at is None  # GET changes nothing
    response = client.post(path)
    assert response.status_code == 200
    handoff_url = html.unescape(
        re.search(r'id="continue" href="([^"]+)"', response.content.decode()).group(1)
    )
    assert f'content="0;url={handoff_url}"' in html.unescape(response.content.decode())
    assert handoff_url.startswith("http://maker-goods.localhost/admin/welcome/")
    assert Creator.objects.get(slug="maker-goods").email_verified_at is not None

    store = Client(HTTP_HOST="maker-goods.localhost")
    landed = store.get(handoff_url.split("localhost", 1)[1], follow=True)
    assert landed.status_code == 200
    assert landed.redirect_chain[-1][0] == "/admin/getting-started/"
    text = landed.content.decode()
    assert 'data-item="verify_email" data-done="true"' in text
    assert 'data-item="add_product" data-done="false"' in text
    assert 'data-item="connect_payouts" data-done="false"' in text

    again = Client(HTTP_HOST="maker-goods.localhost").get(handoff_url.split("localhost", 1)[1])
    assert again.status_code == 403  # single use
    second = client.post(path)
    assert second.status_code == 200 and b"Your email is confirmed" in second.content
    assert LoginHandoff.objects.filter(creator__slug="maker-goods").count() == 1


def test_a_hand_off_token_of_one_store_cannot_log_into_another(db):
    store_a = Creator.objects.get(slug="t1")
    token = signup.handoff_create(creator=store_a)
    other = Client(HTTP_HOST="t2.localhost")
    response = other.get(f"/admin/welcome/{token}/")
    assert response.status_code == 403
    assert b"another store" in response.content
    assert other.get("/admin/getting-started/").status_code == 302  # still not logged in
    # …and the refused attempt did not spend it: it still works on its own store, once.
    mine = Client(HTTP_HOST="t1.localhost")
    assert mine.get(f"/admin/welcome/{token}/").status_code == 302
    assert mine.get("/admin/getting-started/").status_code == 200


def test_an_expired_or_forged_hand_off_is_refused(db):
    store = Creator.objects.get(slug="t1")
    token = signup.handoff_create(creator=store)
    LoginHandoff.objects.update(expires_at="2000-01-01T00:00:00Z")
    client = Client(HTTP_HOST="t1.localhost")
    assert client.get(f"/admin/welcome/{token}/").status_code == 403
    assert client.get("/admin/welcome/forged-token/").status_code == 403
    assert client.get("/admin/getting-started/").status_code == 302


def test_a_forged_verification_link_is_refused(db):
    response = _platform().post("/signup/verify/not-a-token/")
    assert response.status_code == 400 and b"invalid or has expired" in response.content


def test_an_unverified_store_refuses_checkout_before_any_gateway_call(db, monkeypatch):
    from payments import gateway as gateway_module
    from payments import services as payments_services
    from storefront.services import checkout as checkout_service
    from tests.factories import ProductFactory

    _post(_platform())
    creator = Creator.objects.get(slug="maker-goods")

    def no_gateway(**_):
        raise AssertionError("the gateway must not be called")

    monkeypatch.setattr(gateway_module, "get_gateway", no_gateway)
    monkeypatch.setattr(payments_services, "get_gateway", no_gateway)
    with tenant_context(creator):
        product = ProductFactory(slug="ebook")
        with pytest.raises(checkout_service.CheckoutError) as excinfo:
            checkout_service.checkout_start(
                product_slug=product.slug,
                bump_offer_id=None,
                email="b@example.com",
                country="US",
                region="",
                save_card=True,
                attribution=checkout_service.Attribution(),
                expected_total=None,
            )
        assert "not accepting payments yet" in excinfo.value.message
    store = Client(HTTP_HOST="maker-goods.localhost")
    page = store.get("/checkout/ebook/")
    assert page.status_code == 200 and b"not accepting payments yet" in page.content
    assert b"<form" not in page.content
    product_page = store.get("/p/ebook/")
    assert b"not accepting payments yet" in product_page.content
    assert b"Buy now" not in product_page.content


def test_create_creator_refuses_the_names_sign_up_refuses(db):
    import io

    from django.core.management import CommandError, call_command

    for name in ("signup", "mail", "support", "bad-"):
        with pytest.raises(CommandError, match="slug"):
            call_command(
                "create_creator",
                name,
                "Shop",
                f"x{name}.localhost",
                "a@example.com",
                stdout=io.StringIO(),
            )


def test_the_platform_landing_page_lists_no_creators(db):
    response = _platform().get("/")
    assert response.status_code == 200
    assert b"Store T1" not in response.content and b"t1.localhost" not in response.content
    assert b"/signup/" in response.content


@override_settings(SIGNUP_MIN_FILL_SECONDS=0)
def test_the_sign_up_form_renders_with_a_stamp_and_a_hidden_honeypot(db):
    page = _platform().get("/signup/")
    text = page.content.decode()
    assert page.status_code == 200
    stamp = re.search(r'name="stamp" value="([^"]+)"', text).group(1)
    assert signup.signup_stamp_error(stamp) is None
    assert 'name="website"' in text and 'aria-hidden="true"' in text


def test_concurrent_sign_ups_for_one_subdomain_make_one_store_and_tell_the_others(
    django_db_setup, django_db_blocker
):
    """Six people claim the same subdomain at the same moment (a launch tweet): one store is
    made, the others are told it is taken on the page, none gets a 500, and nothing of the
    losers' stores is left behind."""
    from django.core.cache import cache

    from tests.concurrency import in_threads

    addresses = iter(range(1, 100))

    def claim():
        n = next(addresses)
        client = Client(HTTP_HOST=PLATFORM, REMOTE_ADDR=f"198.51.100.{n}")
        client.raise_request_exception = False
        response = _post(client, email=f"racer{n}@example.com", subdomain="race-shop")
        return response.status_code, response.content

    with django_db_blocker.unblock():
        cache.clear()
        connection.set_schema_to_public()
        schemas_before = _state()[2]
        try:
            results, errors = in_threads(6, claim)
            assert errors == []
            statuses = sorted(status for status, _ in results)
            assert all(status < 500 for status in statuses), statuses
            connection.set_schema_to_public()
            made = list(Creator.objects.filter(domains__domain__startswith="race-shop."))
            assert len(made) == 1
            refused = [body for status, body in results if status == 400]
            assert len(refused) == 5 and all(b"is taken" in body for body in refused)
        finally:
            connection.set_schema_to_public()
            for creator in Creator.objects.filter(domains__domain__startswith="race-shop."):
                creator.delete(force_drop=True)
            cache.clear()
        assert _state()[2] == schemas_before
