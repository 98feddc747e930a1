"""/api/v1/ on a creator's domain: every app's partner API, the schema and its docs."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import SimpleRouter

from analytics.api.views import EventViewSet, MetricViewSet
from api.filters import not_found
from offers.api.coupons import CouponViewSet
from offers.api.experiments import ExperimentViewSet
from offers.api.views import OfferViewSet
from payments.api.views import PayoutViewSet, TransferViewSet
from storefront.api.licenses import LicenseViewSet
from storefront.api.views import (
    CustomerViewSet,
    OrderViewSet,
    PrivacyRequestViewSet,
    ProductViewSet,
)
from subscriptions.api.views import SubscriptionViewSet

router = SimpleRouter()
router.register("products", ProductViewSet, basename="api-product")
router.register("offers", OfferViewSet, basename="api-offer")
router.register("coupons", CouponViewSet, basename="api-coupon")
router.register("customers", CustomerViewSet, basename="api-customer")
router.register("orders", OrderViewSet, basename="api-order")
router.register("events", EventViewSet, basename="api-event")
router.register("experiments", ExperimentViewSet, basename="api-experiment")
router.register("metrics", MetricViewSet, basename="api-metric")
router.register("payouts", PayoutViewSet, basename="api-payout")
router.register("transfers", TransferViewSet, basename="api-transfer")
router.register("subscriptions", SubscriptionViewSet, basename="api-subscription")
router.register("privacy-requests", PrivacyRequestViewSet, basename="api-privacy-request")
router.register("licenses", LicenseViewSet, basename="api-license")

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script from ?script= instead of inline, so the
    # page runs under our CSP ('self' scripts, a nonce for anything inline) unchanged.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    *router.urls,
    # JSON 404s for unknown API paths, not the HTML page; [\s\S] so that a path with a
    # newline (%0A) in it is matched too ("." is not).
    re_path(r"^[\s\S]*$", not_found),
]
