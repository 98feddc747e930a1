"""drf-spectacular AutoSchema that documents our error bodies on every operation, so the
schema tells the truth about 4xx answers (schemathesis checks that it does)."""
from drf_spectacular.openapi import AutoSchema as BaseAutoSchema
from drf_spectacular.utils import OpenApiParameter

from api.errors import ErrorSerializer

IDEMPOTENCY_HEADER = OpenApiParameter(
    name="Idempotency-Key", location=OpenApiParameter.HEADER, required=True, type=str,
    description="A unique key per intended effect (1–255 characters). Retrying with the same "
                "key and body replays the first answer; the same key with another body is 409.",
)


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
