"""Protected delivery: files only through the app after the line's check, short-lived signed
links, access ending with a refund or a dispute, counted downloads with a limit, and no public
media path for a product's file."""

import os
import re
import time

import pytest
from django.conf import settings
from django.core import signing
from django.db import connection
from django.urls import reverse

from payments.models import LedgerEntry, LedgerKind, Refund, RefundStatus
from storefront.models import LineAccess, OrderStatus
from storefront.services import delivery
from storefront.services.orders import order_status_sync_from_ledger
from tests.concurrency import in_threads
from tests.delivery_support import FILE_BYTES, paid_order, product_with_file


@pytest.fixture
def course(tenant, files):
    product = product_with_file(slug="course")
    files.append(product)
    return product


def _download_href(client, order) -> str:
    page = client.get(f"/o/{order.token}/").content.decode()
    found = re.search(r'href="(/d/[^"]+)" class="download"', page)
    assert found, page
    return found.group(1)


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_the_order_page_links_a_download_that_streams_the_file_and_counts_it(course, client_for):
    order = paid_order(products=[course])
    client = client_for("t1.localhost")
    href = _download_href(client, order)
    response = client.get(href)
    assert response.status_code == 200
    assert _body(response) == FILE_BYTES
    assert response["Content-Disposition"] == 'attachment; filename="course.pdf"'
    assert "no-store" in response["Cache-Control"]
    access = LineAccess.objects.get(line=order.lines.get())
    assert access.downloads == 1 and access.last_download_at is not None


def test_the_file_lives_outside_every_public_root_and_the_media_path_serves_nothing(
    course, client_for
):
    name = course.deliverable_file.name
    private = os.path.join(settings.DELIVERABLES_ROOT, "t1", name)
    assert os.path.isfile(private)
    assert not os.path.exists(os.path.join(settings.MEDIA_ROOT, "t1", name))
    for root in (settings.MEDIA_ROOT, settings.STATIC_ROOT):
        assert not os.path.realpath(private).startswith(os.path.realpath(str(root)) + os.sep)
    with pytest.raises(ValueError):
        course.deliverable_file.url  # noqa: B018 - there is no public URL to hand out
    client = client_for("t1.localhost")
    for path in (f"/media/t1/{name}", f"/media/{name}", f"/static/{name}", f"/{name}"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert FILE_BYTES not in response.content


def test_after_a_full_refund_the_link_answers_410_and_the_page_shows_no_download(
    course, client_for
):
    order = paid_order(products=[course])
    client = client_for("t1.localhost")
    href = _download_href(client, order)
    line = order.lines.get()
    # The refund counts from its reservation (before the gateway call): access ends at once.
    Refund.objects.create(
        idempotency_key="r1",
        reference=order.reference,
        line_key=line.line_key,
        payment_ref="pi_x",
        amount=line.total_amount,
        currency="USD",
        status=RefundStatus.IN_FLIGHT,
    )
    response = client.get(href)
    assert response.status_code == 410
    assert b"refunded" in response.content and FILE_BYTES not in response.content
    page = client.get(f"/o/{order.token}/").content.decode()
    assert "/d/" not in page and "Refunded: its download" in page
    # A refund the gateway refused gives access back: it is derived, never a stored flag.
    Refund.objects.filter(idempotency_key="r1").update(status=RefundStatus.FAILED)
    assert client.get(href).status_code == 200


def test_a_fully_refunded_order_shows_no_download_links_at_all(course, client_for):
    order = paid_order(products=[course])
    client = client_for("t1.localhost")
    href = _download_href(client, order)
    type(order).objects.filter(pk=order.pk).update(status=OrderStatus.REFUNDED)
    page = client.get(f"/o/{order.token}/").content.decode()
    assert "/d/" not in page and "refunded in full" in page
    assert client.get(href).status_code == 410


def test_a_partial_refund_of_a_line_keeps_its_download(course, client_for):
    order = paid_order(products=[course])
    line = order.lines.get()
    LedgerEntry.objects.create(
        kind=LedgerKind.REFUND,
        gateway_ref="re_part",
        reference=order.reference,
        line_key=line.line_key,
        amount=100,
        currency="USD",
    )
    order_status_sync_from_ledger(order=order)  # what the ledger handler does
    assert order.status == OrderStatus.PARTIALLY_REFUNDED
    client = client_for("t1.localhost")
    assert client.get(_download_href(client, order)).status_code == 200


def test_a_refund_made_at_the_gateway_ends_access_like_ours(course, client_for):
    order = paid_order(products=[course])
    client = client_for("t1.localhost")
    href = _download_href(client, order)
    line = order.lines.get()
    LedgerEntry.objects.create(
        kind=LedgerKind.REFUND,
        gateway_ref="re_dashboard",
        reference=order.reference,
        line_key=line.line_key,
        amount=line.total_amount,
        currency="USD",
    )
    order_status_sync_from_ledger(order=order)  # what the ledger handler does
    assert client.get(href).status_code == 410


def test_a_chargeback_ends_the_download(course, client_for):
    order = paid_order(products=[course])
    client = client_for("t1.localhost")
    href = _download_href(client, order)
    line = order.lines.get()
    LedgerEntry.objects.create(
        kind=LedgerKind.CHARGEBACK,
        gateway_ref="dp_1",
        reference=order.reference,
        line_key=line.line_key,
        amount=line.total_amount - 1,  # a partial dispute still ends access
        currency="USD",
    )
    order_status_sync_from_ledger(order=order)  # what the ledger handler does
    assert order.status == OrderStatus.PARTIALLY_REFUNDED
    response = client.get(href)
    assert response.status_code == 410 and b"disputed" in response.content
    assert "/d/" not in client.get(f"/o/{order.token}/").content.decode()


def test_only_the_refunded_line_loses_its_download(tenant, files, client_for):
    core, bump = product_with_file(slug="core"), product_with_file(slug="bump")
    files.extend([core, bump])
    order = paid_order(products=[core, bump])
    core_line, bump_line = order.lines.order_by("pk")
    LedgerEntry.objects.create(
        kind=LedgerKind.REFUND,
        gateway_ref="re_bump",
        reference=order.reference,
        line_key=bump_line.line_key,
        amount=bump_line.total_amount,
        currency="USD",
    )
    order_status_sync_from_ledger(order=order)  # what the ledger handler does
    assert order.status == OrderStatus.PARTIALLY_REFUNDED
    states = delivery.line_states(order=order)
    assert states == {core_line.pk: "active", bump_line.pk: "refunded"}
    page = client_for("t1.localhost").get(f"/o/{order.token}/").content.decode()
    assert page.count('class="download"') == 1


def test_forged_tampered_foreign_and_unpaid_links_get_nothing(course, client_for):
    order = paid_order(products=[course])
    line = order.lines.get()
    client = client_for("t1.localhost")
    good = delivery.download_token(line=line, schema="t1")
    forged_salt = signing.TimestampSigner(salt="other").sign_object({"l": line.pk, "s": "t1"})
    other_store = delivery.download_token(line=line, schema="t2")
    tampered = good[:-3] + ("aaa" if not good.endswith("aaa") else "bbb")
    old_style = signing.dumps(
        {"line": line.pk, "order": order.pk, "schema": "t1"}, salt="storefront.download"
    )
    for token in (forged_salt, other_store, tampered, old_style, "not-a-valid-link", "a:b:c"):
        response = client.get(f"/d/{token}")
        assert response.status_code == 403, token
        assert FILE_BYTES not in response.content
    type(order).objects.filter(pk=order.pk).update(status=OrderStatus.PENDING)
    assert client.get(f"/d/{good}").status_code == 403
    assert LineAccess.objects.filter(line=line, downloads__gt=0).count() == 0
    # Genuine for t1, asked on t2's host (last: the request moves this connection to t2).
    type(order).objects.filter(pk=order.pk).update(status=OrderStatus.PAID)
    assert client_for("t2.localhost").get(f"/d/{good}").status_code == 403


def test_an_expired_link_gets_nothing_but_a_way_back_to_the_order_page(
    course, client_for, settings
):
    order = paid_order(products=[course])
    client = client_for("t1.localhost")
    href = _download_href(client, order)
    settings.DELIVERY_LINK_MAX_AGE = 1
    time.sleep(2.1)
    response = client.get(href)
    assert response.status_code == 403
    assert b"expired" in response.content and FILE_BYTES not in response.content
    assert reverse("order-page", args=[order.token]).encode() in response.content


def test_the_download_limit_holds_and_a_resumed_download_is_not_counted(tenant, files, client_for):
    product = product_with_file(slug="limited", download_limit=2)
    files.append(product)
    order = paid_order(products=[product])
    client = client_for("t1.localhost")
    page = client.get(f"/o/{order.token}/").content.decode()
    assert "2 downloads left" in page
    href = _download_href(client, order)
    assert client.get(href).status_code == 200
    assert client.get(href, HTTP_RANGE="bytes=100-").status_code == 200  # a resume
    assert client.get(href).status_code == 200
    refused = client.get(href)
    assert refused.status_code == 403 and b"limit" in refused.content
    assert LineAccess.objects.get(line=order.lines.get()).downloads == 2
    assert "0 downloads left" in client.get(f"/o/{order.token}/").content.decode()


def test_concurrent_downloads_never_pass_the_limit(live_tenant):
    from tests.factories import ProductFactory

    product = ProductFactory(slug="race", download_limit=3)
    order = paid_order(products=[product])
    line = order.lines.get()

    def download():
        from storefront.models import OrderLine

        return delivery.download_count(
            line=OrderLine.objects.select_related("product").get(pk=line.pk)
        )

    results, errors = in_threads(12, download, tenant=live_tenant)
    assert errors == []
    assert sorted(results) == [False] * 9 + [True] * 3
    assert LineAccess.objects.get(line=line).downloads == 3


@pytest.mark.parametrize("header", ["X-Accel-Redirect", "X-Sendfile"])
def test_in_production_the_proxy_sends_the_file(course, client_for, settings, header):
    settings.DELIVERY_ACCEL_HEADER = header
    order = paid_order(products=[course])
    client = client_for("t1.localhost")
    response = client.get(_download_href(client, order))
    assert response.status_code == 200 and response.content == b""
    name = course.deliverable_file.name  # deliverables/course….pdf
    expected = {
        # nginx: an internal location aliased to DELIVERABLES_ROOT
        "X-Accel-Redirect": f"/_deliverables/t1/{name}",
        # Apache / lighttpd: the absolute path in the private root
        "X-Sendfile": os.path.join(os.path.abspath(settings.DELIVERABLES_ROOT), "t1", name),
    }
    assert response[header] == expected[header]
    assert response["Content-Disposition"] == 'attachment; filename="course.pdf"'
    assert LineAccess.objects.get(line=order.lines.get()).downloads == 1


def test_an_external_deliverable_is_handed_out_only_after_the_same_check(tenant, client_for):
    from tests.factories import ProductFactory

    product = ProductFactory(slug="ext")  # deliverable_url only
    order = paid_order(products=[product])
    client = client_for("t1.localhost")
    href = _download_href(client, order)
    response = client.get(href)
    assert response.status_code == 302 and response["Location"] == product.deliverable_url
    type(order).objects.filter(pk=order.pk).update(status=OrderStatus.REFUNDED)
    assert client.get(href).status_code == 410


def test_a_link_is_bound_to_its_store_schema(course):
    line = paid_order(products=[course]).lines.get()
    token = delivery.download_token(line=line, schema=connection.schema_name)
    assert delivery.download_check(token=token, schema="t1").line_id == line.pk
    assert delivery.download_check(token=token, schema="t2").line_id is None


def test_the_store_admin_shows_the_private_file_by_name_and_takes_a_new_upload(course, client_for):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client = client_for("t1.localhost")
    assert client.login(username="owner", password="owner-pass-123")
    url = f"/admin/storefront/product/{course.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert course.deliverable_file.name in html and "/media/" not in html
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "deliverable_file"}
    data.update(
        {
            "deliverable_file": SimpleUploadedFile("v2.pdf", b"%PDF-1.4 v2"),
            "download_limit": "5",
            "license_keys": "on",
            # The pictures' and testimonials' inlines, empty, as the page sends them.
            **{
                f"{prefix}-{key}": value
                for prefix in ("images", "testimonials")
                for key, value in (("TOTAL_FORMS", "0"), ("INITIAL_FORMS", "0"))
            },
        }
    )
    saved = client.post(url, data)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    course.refresh_from_db()
    try:
        assert course.download_limit == 5 and course.license_keys
        assert course.deliverable_file.name.startswith("deliverables/v2")
        path = os.path.join(settings.DELIVERABLES_ROOT, "t1", course.deliverable_file.name)
        assert os.path.isfile(path)
    finally:
        course.deliverable_file.storage.delete(course.deliverable_file.name)
