"""Upload size limits, shared by the web form, the API and the admin.

A manifest is at most ``MAX_MANIFEST_BYTES`` (64 KiB of UTF-8, the parser's limit). A
request that carries one in an envelope (a JSON string, a url-encoded or multipart
form) may be larger than the manifest, since the envelope escapes characters: at most
three times larger (``\\n`` is two bytes, a non-ASCII character up to three times its
UTF-8 size as ``\\uXXXX`` or ``%XX``), plus room for the other fields. A body over its
limit is refused from its ``Content-Length`` before a byte of it is read.
"""

from __future__ import annotations

from typing import Final

from apps_registry.manifest import MAX_MANIFEST_BYTES

__all__ = ["MAX_ENVELOPE_BYTES", "MAX_MANIFEST_BYTES", "content_length"]

MAX_ENVELOPE_BYTES: Final = 3 * MAX_MANIFEST_BYTES + 8 * 1024


def content_length(meta: dict) -> int:
    """The request's declared ``Content-Length`` (0 when absent or malformed)."""
    try:
        return max(0, int(meta.get("CONTENT_LENGTH") or 0))
    except (TypeError, ValueError):
        return 0
