"""`Idempotency-Key` for API POSTs that create or move money.

The record is inserted as in-progress under its unique constraint *before* the effect, so of
concurrent requests with one key exactly one runs; the others wait for its answer and replay it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable

from rest_framework import exceptions, status
from rest_framework.response import Response

from api.errors import ApiError, error_body, exception_handler
from api.schema import IDEMPOTENCY_KEY_HEADER, IDEMPOTENCY_KEY_PATTERN
from partners.services import (
    IdempotencyConflict,
    idempotency_begin,
    idempotency_finish,
    idempotency_release,
    request_fingerprint,
)

HEADER = IDEMPOTENCY_KEY_HEADER
_KEY_RE = re.compile(IDEMPOTENCY_KEY_PATTERN)
REPLAY_HEADER = "Idempotent-Replayed"
# Answers given before any effect: the key is given back instead of keeping them for replay.
_NOT_KEPT = (status.HTTP_400_BAD_REQUEST, status.HTTP_429_TOO_MANY_REQUESTS)


def gateway_key(request, key: str) -> str:
    """A key for the payments layer, one per Idempotency-Key of this store (whichever API key
    sent it; the gateway adapter adds the store, payments.gateway.store_idempotency_key)."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:48]
    return f"api_{digest}"


def idempotent(request, view, perform: Callable[[str], Response]) -> Response:
    key = request.headers.get(HEADER, "")
    if not _KEY_RE.fullmatch(key):
        raise ApiError(
            "idempotency_key_required",
            f"Send an {HEADER} header of 1–255 visible ASCII characters (no spaces), e.g. a UUID.",
            fields={HEADER: ["This header is required."]},
        )
    try:
        body = json.dumps(request.data, sort_keys=True, default=str).encode()
    except exceptions.ParseError:
        raise
    fingerprint = request_fingerprint(method=request.method, path=request.path, body=body)
    try:
        record, mine = idempotency_begin(
            api_key=request.auth,
            key=key,
            method=request.method,
            path=request.path,
            request_hash=fingerprint,
        )
    except IdempotencyConflict as exc:
        return Response(error_body(exc.code, exc.message), status=status.HTTP_409_CONFLICT)
    if not mine:
        response = Response(record.response_body, status=record.response_status)
        response[REPLAY_HEADER] = "true"
        return response
    try:
        try:
            response = perform(gateway_key(request, key))
        except exceptions.APIException as exc:
            response = exception_handler(exc, {"request": request, "view": view})
    except BaseException:
        idempotency_release(record=record)
        raise
    if response.status_code in _NOT_KEPT or response.status_code >= 500:
        # Nothing happened that a retry should not redo: as Stripe does, a request refused
        # for its input (400) or its rate is not kept, so the corrected retry may reuse the key.
        idempotency_release(record=record)
    else:
        idempotency_finish(record=record, status=response.status_code, body=response.data)
    return response
