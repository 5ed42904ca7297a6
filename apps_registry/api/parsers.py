"""Request-body parsers that never read more than an upload may be.

DRF's own parsers read the whole body first; these read at most one byte over the
limit and refuse (413) past it, so a huge body costs nothing but its refusal.
"""

from __future__ import annotations

import json
from typing import Any

from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import BaseParser

from apps_registry.limits import MAX_ENVELOPE_BYTES, MAX_MANIFEST_BYTES


class PayloadTooLargeError(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


def read_bounded(stream: Any, limit: int) -> bytes:
    """At most ``limit`` bytes of ``stream``; ``PayloadTooLargeError`` if there are more."""
    data = stream.read(limit + 1) if stream is not None else b""
    if len(data) > limit:
        raise PayloadTooLargeError(
            f"The request body is over {limit:,} bytes; a manifest may be at most "
            f"{MAX_MANIFEST_BYTES:,} bytes (64 KiB)."
        )
    return bytes(data)


class ManifestTextParser(BaseParser):
    """``text/plain``: the body is the manifest, as bytes (it must be UTF-8)."""

    media_type = "text/plain"

    # DRF hands whatever a parser returns to ``request.data``: bytes here.
    def parse(  # type: ignore[override]
        self, stream: Any, media_type: str | None = None, parser_context: Any = None
    ) -> bytes:
        return read_bounded(stream, MAX_MANIFEST_BYTES)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class BoundedJSONParser(BaseParser):
    """``application/json`` (RFC 8259: UTF-8, no NaN), at most ``MAX_ENVELOPE_BYTES``."""

    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        data = read_bounded(stream, MAX_ENVELOPE_BYTES)
        try:
            return json.loads(data, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:
            # RecursionError: "[[[[..." nested deeper than Python's stack.
            raise ParseError(f"JSON parse error: {type(exc).__name__}") from None
