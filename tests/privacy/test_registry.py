"""The coverage rule of storefront.privacy.registry: every model that could hold something
about a buyer is either registered (export + erasure) or exempted with a reason."""

from __future__ import annotations

from django.apps import apps
from django.db import models
from django.test.utils import isolate_apps

from storefront.privacy.registry import EXEMPT, REGISTRY, needs_declaration, undeclared


def test_every_installed_model_with_a_buyer_field_is_registered_or_exempted_with_a_reason():
    assert undeclared(apps.get_models()) == []
    assert all(reason.strip() for reason in EXEMPT.values())
    assert not set(REGISTRY) & set(EXEMPT)


def test_every_registered_and_exempted_label_is_a_real_model():
    installed = {m._meta.label_lower for m in apps.get_models()}
    assert set(REGISTRY) <= installed
    assert set(EXEMPT) <= installed


def test_every_entry_that_keeps_rows_says_why():
    assert [label for label, entry in REGISTRY.items() if not entry.kept.strip()] == []


@isolate_apps("storefront")
def test_a_new_model_with_a_customer_email_visitor_or_payload_field_is_caught_until_declared():
    class GiftCard(models.Model):  # noqa: DJ008 - a throw-away model
        recipient_email = models.EmailField()

        class Meta:
            app_label = "storefront"

    class Review(models.Model):  # noqa: DJ008 - a throw-away model
        author = models.ForeignKey("storefront.Customer", on_delete=models.CASCADE)

        class Meta:
            app_label = "storefront"

    class PackingSlip(models.Model):  # noqa: DJ008 - a throw-away model
        order = models.ForeignKey("storefront.Order", on_delete=models.CASCADE)

        class Meta:
            app_label = "storefront"

    class Hook(models.Model):  # noqa: DJ008 - a throw-away model
        payload = models.JSONField()

        class Meta:
            app_label = "storefront"

    class Coupon(models.Model):  # noqa: DJ008 - a throw-away model
        code = models.CharField(max_length=20)

        class Meta:
            app_label = "storefront"

    assert undeclared([GiftCard, Review, PackingSlip, Hook, Coupon]) == [
        "storefront.giftcard",
        "storefront.hook",
        "storefront.packingslip",
        "storefront.review",
    ]
    assert not needs_declaration(Coupon)
