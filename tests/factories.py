"""Factories for the models (factory-boy)."""

import factory

from offers.models import Coupon, CouponKind, Offer, OfferKind
from storefront.models import Product, TaxRate


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    slug = factory.Sequence(lambda n: f"product-{n}")
    name = factory.Sequence(lambda n: f"Product {n}")
    price_amount = 4900
    currency = "USD"
    status = Product.Status.ACTIVE
    ladder_position = factory.Sequence(lambda n: n)
    deliverable_url = "https://files.example/download.zip"


class OfferFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Offer

    kind = OfferKind.BUMP
    trigger_product = factory.SubFactory(ProductFactory)
    product = factory.SubFactory(ProductFactory, price_amount=1200)
    price_amount = 900
    currency = "USD"
    headline = "Add the preset pack"
    benefit = "Apply what you learn in one click."


class TaxRateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TaxRate

    country = "DE"
    region = ""
    rate = "19.000"
    name = "VAT"


class CouponFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Coupon
        skip_postgeneration_save = True

    code = factory.Sequence(lambda n: f"SAVE{n}")
    kind = CouponKind.PERCENT
    percent_off = "20.00"
    currency = "USD"
    applies_to_all = True
    max_per_customer = 1

    @factory.post_generation
    def products(self, create, extracted, **kwargs):
        if create and extracted:
            self.products.set(extracted)
