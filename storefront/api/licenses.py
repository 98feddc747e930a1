"""Partner API: verify a license key (`POST /api/v1/licenses/verify/`).

A read, so any key may call it (a read key included); POST so the license key travels in the
body, not in URLs that proxies and logs keep. A key this store did not issue (another store's
included: each store is its own schema) is a 404, the same as a key that never existed."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from api.errors import ApiError
from storefront.api.serializers import LicenseOut, LicenseVerifyIn
from storefront.services.delivery import license_verify


class AnyKey(permissions.BasePermission):
    """Any valid store API key, read-only keys included."""

    def has_permission(self, request, view) -> bool:
        key = request.auth
        return key is not None and hasattr(key, "can_write")


class LicenseViewSet(viewsets.GenericViewSet):
    permission_classes = [AnyKey]
    serializer_class = LicenseVerifyIn
    filter_backends: list = []
    pagination_class = None

    @extend_schema(
        request=LicenseVerifyIn,
        responses={
            200: LicenseOut,
            404: OpenApiResponse(description="This store issued no such license key."),
        },
        description="Whether a license key this store issued may be used now. Any API key "
        "(read-only included). `valid` turns false when its purchase is refunded or "
        "charged back.",
    )
    @action(detail=False, methods=["post"])
    def verify(self, request):
        data = LicenseVerifyIn(data=request.data)
        data.is_valid(raise_exception=True)
        info = license_verify(key=data.validated_data["key"])
        if info is None:
            raise ApiError(
                "license_not_found", "This store issued no such license key.", status_code=404
            )
        return Response(LicenseOut(info).data)
