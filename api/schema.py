"""drf-spectacular AutoSchema that documents our error bodies on every operation, so the
schema tells the truth about 4xx answers (schemathesis checks that it does), and a
post-processing hook so that it does not allow what the server refuses: NUL in a string,
an empty decimal."""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.openapi import AutoSchema as BaseAutoSchema
from drf_spectacular.utils import OpenApiParameter

from api.errors import ErrorSerializer

# The Idempotency-Key header, exactly as partners.api.idempotency checks it.
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_PATTERN = r"[!-~]{1,255}"

IDEMPOTENCY_HEADER = OpenApiParameter(
    name=IDEMPOTENCY_KEY_HEADER,
    location=OpenApiParameter.HEADER,
    required=True,
    type={
        "type": "string",
        "pattern": f"^{IDEMPOTENCY_KEY_PATTERN}$",
        "minLength": 1,
        "maxLength": 255,
    },
    description="A unique key per intended effect: 1–255 visible ASCII characters (no spaces), "
    "e.g. a UUID. Scoped to the store: retrying with the same key and body, with "
    "any of the store's write keys, replays the first answer; the same key with "
    "another body is 409.",
)

# Text fields refuse NUL (PostgreSQL text cannot hold it; DRF's CharField refuses it), so the
# schema says so on every string that has no stricter pattern, format or enum of its own.
NO_NUL_PATTERN = "^[^\\u0000]*$"
# drf-spectacular's decimal pattern makes every digit optional, so it allows "" and "-",
# which the server refuses: require a digit before or after the point.
_DECIMAL_RE = re.compile(r"^\^-\?\\d\{0,(\d+)\}(?:\(\?:\\\.\\d\{0,(\d+)\}\)\?)?\$$")


def _decimal_pattern(whole: int, places: int | None) -> str:
    if not places:
        return rf"^-?\d{{1,{whole}}}$"
    return rf"^-?(?:\d{{1,{whole}}}(?:\.\d{{0,{places}}})?|\.\d{{1,{places}}})$"


def _tighten(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            _tighten(item)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "string":
        if node.get("format") == "decimal" and "pattern" in node:
            found = _DECIMAL_RE.match(node["pattern"])
            if found:
                whole, places = found.groups()
                node["pattern"] = _decimal_pattern(int(whole), int(places) if places else None)
        elif not ({"format", "enum", "pattern"} & node.keys()):
            node["pattern"] = NO_NUL_PATTERN
    for value in node.values():
        _tighten(value)


def postprocess_strict_strings(result: dict, generator, request, public) -> dict:
    """SPECTACULAR_SETTINGS POSTPROCESSING_HOOKS: see NO_NUL_PATTERN and _decimal_pattern."""
    _tighten(result.get("components", {}))
    _tighten(result.get("paths", {}))
    return result


class AutoSchema(BaseAutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        codes = ["400", "401", "403", "404", "406", "429"]
        if self.method not in ("GET", "HEAD", "OPTIONS"):
            codes += ["409", "415"]
        codes.append("405")
        for code in codes:
            if code not in responses:
                responses[code] = self._get_response_for_code(ErrorSerializer, code)
        return responses
